// One parser per family's config.json (each in its own file).
#pragma once
#include "core/config_json.h"
#include "core/model_config.h"

namespace bmh {

ModelConfig parse_zyphra_config(const ConfigJson& c);    // core/config_zyphra.cpp
ModelConfig parse_mamba_ssm_config(const ConfigJson& c); // core/config_mamba.cpp
ModelConfig parse_hf_mamba_config(const ConfigJson& c);  // core/config_mamba.cpp
ModelConfig parse_gpt_neox_config(const ConfigJson& c);  // core/config_gpt_neox.cpp
ModelConfig parse_mixtral_config(const ConfigJson& c);   // core/config_mixtral.cpp
ModelConfig parse_jamba_config(const ConfigJson& c);     // core/config_jamba.cpp

// Block builders shared by the parsers and the presets.
MambaSpec mamba_spec(int d_model, int d_state, int d_conv, int expand, int dt_rank, bool proj_bias, bool conv_bias);
// Zyphra mamba_moe_layers entries (mamba_block.py create_block): "r", "1", "2".."9", "r1".."r9".
BlockConfig zyphra_block(const std::string& entry, int index, const MambaSpec& mamba, const MlpSpec& ffn,
                         const std::string& where);

}  // namespace bmh

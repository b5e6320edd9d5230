// The base model that checkpoints are analysed on: built from a Hugging Face folder, with the
// classification head the checkpoints' module paths and tensors call for.
#pragma once

#include <torch/nn/module.h>

#include <filesystem>
#include <memory>
#include <vector>

/// A BERT or RoBERTa model from `model_dir` with its pretrained weights: the sequence
/// classification model when the checkpoints adapt layers under the base model prefix
/// (`bert.encoder...`), sized to the number of labels of the head a checkpoint saved, and the
/// bare encoder otherwise.
std::shared_ptr<torch::nn::Module> build_base_model(const std::filesystem::path& model_dir,
                                                    const std::vector<std::filesystem::path>& checkpoints);

// The nine GLUE tasks: what each one is (labels, metrics, files) and a reader for its TSV files
// in the layout written by the GLUE download script (glue_data/<folder>/<split>.tsv).
#pragma once

#include "tlora/export.h"

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

TLORA_API_BEGIN
namespace tlora::glue {

/// A GLUE task.
enum class Task { CoLA, SST2, MRPC, STSB, QQP, MNLI, QNLI, RTE, WNLI };

/// The task called `name`, ignoring case: "cola", "sst-2" or "sst2", "mrpc", "sts-b" or "stsb",
/// "qqp", "mnli", "qnli", "rte", "wnli". Any other name is a c10::Error that lists these.
Task task_from_name(std::string_view name);

/// What a task is and where its files are.
struct TaskInfo {
  /// Lower-case short name, one that task_from_name accepts (e.g. "sst2").
  std::string name;
  /// True for STS-B, whose label is a similarity score rather than a class.
  bool is_regression = false;
  /// The label strings as they appear in the files; a class label is its index here. Empty for
  /// a regression task.
  std::vector<std::string> label_names;
  /// True when an example is a pair of texts (every task but CoLA and SST-2).
  bool is_pair = false;
  /// The task's official metrics: "mcc", "accuracy", "f1", "pearson", "spearman".
  std::vector<std::string> metric_names;
  /// The task's folder inside the GLUE data folder (e.g. "SST-2").
  std::string folder;
  /// The dev split files in that folder: one, except MNLI's matched and mismatched sets.
  std::vector<std::string> dev_files;
};

/// The description of `task`.
const TaskInfo& info(Task task);

/// One line of a task file.
struct Example {
  /// The first (or only) text.
  std::string text_a;
  /// The second text of a pair task; absent for CoLA and SST-2.
  std::optional<std::string> text_b;
  /// The class index (as a double) or, for STS-B, the score; absent in a test file, which has
  /// no label column.
  std::optional<double> label;
  /// The 1-based line of the file the example was read from.
  int64_t line = 0;
};

/// Reads the examples of a train, dev or test file of `task`. Fields are split on tabs only:
/// quotes are literal text, as the GLUE files hold unbalanced ones. A UTF-8 BOM at the start
/// (MRPC has one) is dropped, and the header's column names are checked (CoLA's train and dev
/// files have no header). A missing file, a line whose column count differs from the header's,
/// an unknown label or a bad score is a c10::Error naming the file and the 1-based line.
std::vector<Example> read_examples(Task task, const std::filesystem::path& tsv_file);

/// Reads the examples of `task` from the TSV text `in`, as above; `source` names it in errors.
std::vector<Example> read_examples(Task task, std::istream& in, std::string_view source);

/// The path of `task`'s train file in the GLUE data folder `glue_dir`; not checked to exist.
std::filesystem::path train_file(Task task, const std::filesystem::path& glue_dir);

/// The path of `task`'s dev file number `split` (an index into info(task).dev_files: for MNLI
/// 0 is matched and 1 mismatched) in the GLUE data folder `glue_dir`; not checked to exist.
std::filesystem::path dev_file(Task task, const std::filesystem::path& glue_dir, int split = 0);

}  // namespace tlora::glue
TLORA_API_END

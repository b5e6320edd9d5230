// GLUE task descriptions and TSV readers.
#include "tlora/glue/tasks.h"

#include <c10/util/Exception.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>

namespace tlora::glue {
namespace {

// Column names in the header; the label column may be missing (test files).
struct Columns {
  const char* text_a;
  const char* text_b;  // nullptr for single-text tasks
  const char* label;
};

struct TaskSpec {
  Task task;
  std::array<std::string_view, 2> names;  // accepted by task_from_name (lower case)
  TaskInfo info;
  Columns columns;
};

const std::array<TaskSpec, 9>& specs() {
  static const std::array<TaskSpec, 9> kSpecs{{
      {Task::CoLA, {"cola", "cola"},
       {"cola", false, {"0", "1"}, false, {"mcc"}, "CoLA", {"dev.tsv"}},
       {"sentence", nullptr, "label"}},
      {Task::SST2, {"sst2", "sst-2"},
       {"sst2", false, {"0", "1"}, false, {"accuracy"}, "SST-2", {"dev.tsv"}},
       {"sentence", nullptr, "label"}},
      {Task::MRPC, {"mrpc", "mrpc"},
       {"mrpc", false, {"0", "1"}, true, {"accuracy", "f1"}, "MRPC", {"dev.tsv"}},
       {"#1 String", "#2 String", "Quality"}},
      {Task::STSB, {"stsb", "sts-b"},
       {"stsb", true, {}, true, {"pearson", "spearman"}, "STS-B", {"dev.tsv"}},
       {"sentence1", "sentence2", "score"}},
      {Task::QQP, {"qqp", "qqp"},
       {"qqp", false, {"0", "1"}, true, {"accuracy", "f1"}, "QQP", {"dev.tsv"}},
       {"question1", "question2", "is_duplicate"}},
      {Task::MNLI, {"mnli", "mnli"},
       {"mnli", false, {"entailment", "neutral", "contradiction"}, true, {"accuracy"}, "MNLI",
        {"dev_matched.tsv", "dev_mismatched.tsv"}},
       {"sentence1", "sentence2", "gold_label"}},
      {Task::QNLI, {"qnli", "qnli"},
       {"qnli", false, {"entailment", "not_entailment"}, true, {"accuracy"}, "QNLI", {"dev.tsv"}},
       {"question", "sentence", "label"}},
      {Task::RTE, {"rte", "rte"},
       {"rte", false, {"entailment", "not_entailment"}, true, {"accuracy"}, "RTE", {"dev.tsv"}},
       {"sentence1", "sentence2", "label"}},
      {Task::WNLI, {"wnli", "wnli"},
       {"wnli", false, {"0", "1"}, true, {"accuracy"}, "WNLI", {"dev.tsv"}},
       {"sentence1", "sentence2", "label"}},
  }};
  return kSpecs;
}

const TaskSpec& spec(Task task) {
  for (const auto& s : specs()) {
    if (s.task == task) return s;
  }
  TORCH_CHECK(false, "glue: unknown task value ", static_cast<int>(task));
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  for (size_t tab; (tab = line.find('\t', start)) != std::string_view::npos; start = tab + 1) {
    fields.push_back(line.substr(start, tab - start));
  }
  fields.push_back(line.substr(start));
  return fields;
}

int find_column(const std::vector<std::string_view>& header, std::string_view name) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string join(const std::vector<std::string_view>& fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += ", ";
    out += '"';
    out += f;
    out += '"';
  }
  return out;
}

}  // namespace

Task task_from_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string accepted;
  for (const auto& s : specs()) {
    for (const auto& n : s.names) {
      if (lower == n) return s.task;
    }
    accepted += accepted.empty() ? "" : ", ";
    accepted += s.names[0] == s.names[1] ? std::string(s.names[0])
                                         : std::string(s.names[1]) + "/" + std::string(s.names[0]);
  }
  TORCH_CHECK(false, "glue: unknown task \"", name, "\"; accepted (any case): ", accepted);
}

const TaskInfo& info(Task task) { return spec(task).info; }

std::filesystem::path train_file(Task task, const std::filesystem::path& glue_dir) {
  return glue_dir / info(task).folder / "train.tsv";
}

std::filesystem::path dev_file(Task task, const std::filesystem::path& glue_dir, int split) {
  const TaskInfo& i = info(task);
  TORCH_CHECK(split >= 0 && split < static_cast<int>(i.dev_files.size()), "glue: ", i.name,
              " has ", i.dev_files.size(), " dev split(s), not split ", split);
  return glue_dir / i.folder / i.dev_files[split];
}

std::vector<Example> read_examples(Task task, const std::filesystem::path& tsv_file) {
  std::ifstream in(tsv_file, std::ios::binary);
  TORCH_CHECK(in.is_open(), "glue: cannot open ", tsv_file.string(), ": ", std::strerror(errno));
  return read_examples(task, in, tsv_file.string());
}

std::vector<Example> read_examples(Task task, std::istream& in, std::string_view source) {
  const TaskSpec& s = spec(task);

  int col_a = -1, col_b = -1, col_label = -1;
  size_t n_columns = 0;
  std::vector<Example> examples;
  std::string raw;
  for (int64_t line_no = 1; std::getline(in, raw); ++line_no) {
    std::string_view line(raw);
    if (line_no == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    // Tolerates copies converted to CRLF line ends.
    if (line.ends_with('\r')) line.remove_suffix(1);
    const auto fields = split_tabs(line);
    const auto fail = [&](const auto&... what) {
      TORCH_CHECK(false, "glue: ", source, ":", line_no, ": ", what...);
    };

    if (line_no == 1) {
      // CoLA's train and dev files have no header (source, label, original label, sentence);
      // its test file does ("index", "sentence").
      if (task == Task::CoLA && fields[0] != "index") {
        n_columns = 4;
        col_a = 3;
        col_label = 1;
      } else {
        n_columns = fields.size();
        col_a = find_column(fields, s.columns.text_a);
        col_b = s.columns.text_b ? find_column(fields, s.columns.text_b) : -1;
        col_label = find_column(fields, s.columns.label);
        if (col_a < 0 || (s.columns.text_b && col_b < 0)) {
          fail("the header lacks the ", s.info.name, " text column(s) \"", s.columns.text_a,
               s.columns.text_b ? std::string("\", \"") + s.columns.text_b : std::string(),
               "\"; it has ", join(fields));
        }
        continue;
      }
    }

    if (fields.size() != n_columns) {
      fail("expected ", n_columns, " tab-separated columns, found ", fields.size());
    }
    Example ex;
    ex.line = line_no;
    ex.text_a = std::string(fields[col_a]);
    if (col_b >= 0) ex.text_b = std::string(fields[col_b]);
    if (col_label >= 0) {
      const std::string_view label = fields[col_label];
      if (s.info.is_regression) {
        double score = 0;
        const auto [end, ec] = std::from_chars(label.data(), label.data() + label.size(), score);
        if (ec != std::errc() || end != label.data() + label.size() || !std::isfinite(score) ||
            score < 0 || score > 5) {
          fail("score \"", label, "\" is not a number from 0 to 5");
        }
        ex.label = score;
      } else {
        const auto& names = s.info.label_names;
        for (size_t i = 0; i < names.size() && !ex.label; ++i) {
          if (label == names[i]) ex.label = static_cast<double>(i);
        }
        if (!ex.label) fail("unknown ", s.info.name, " label \"", label, "\"");
      }
    }
    examples.push_back(std::move(ex));
  }
  TORCH_CHECK(!in.bad(), "glue: cannot read ", source, ": ", std::strerror(errno));
  TORCH_CHECK(n_columns > 0, "glue: ", source, " is empty; expected a header line");
  return examples;
}

}  // namespace tlora::glue

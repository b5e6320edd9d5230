#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tlora/glue/tasks.h"

namespace {

using tlora::glue::Task;
namespace glue = tlora::glue;

const std::string kGlueDir = TLORA_FIXTURE_DIR "/../../../shared/data/glue";
const std::string kFixtureGlueDir = TLORA_FIXTURE_DIR "/glue";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> raw_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) fields.push_back(field);
  if (!line.empty() && line.back() == '\t') fields.emplace_back();
  return fields;
}

std::string write_temp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "glue_tasks_test_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Column positions written out here rather than taken from the reader, so the two are checked
// against each other.
struct RealFile {
  Task task;
  std::string file;
  bool has_header;
  int col_a, col_b, col_label;  // col_b -1 for single-text tasks
};

TEST(GlueTasks, RealFilesMatchTheirRawLines) {
  if (!exists(kGlueDir)) GTEST_SKIP() << "no GLUE data at " << kGlueDir;
  const std::vector<RealFile> files = {
      {Task::CoLA, "CoLA/train.tsv", false, 3, -1, 1},
      {Task::CoLA, "CoLA/dev.tsv", false, 3, -1, 1},
      {Task::SST2, "SST-2/train.tsv", true, 0, -1, 1},
      {Task::SST2, "SST-2/dev.tsv", true, 0, -1, 1},
      {Task::MRPC, "MRPC/train.tsv", true, 3, 4, 0},   {Task::MRPC, "MRPC/dev.tsv", true, 3, 4, 0},
      {Task::STSB, "STS-B/train.tsv", true, 7, 8, 9},  {Task::STSB, "STS-B/dev.tsv", true, 7, 8, 9},
      {Task::RTE, "RTE/train.tsv", true, 1, 2, 3},     {Task::RTE, "RTE/dev.tsv", true, 1, 2, 3},
      {Task::WNLI, "WNLI/train.tsv", true, 1, 2, 3},   {Task::WNLI, "WNLI/dev.tsv", true, 1, 2, 3},
      {Task::QNLI, "QNLI/dev.tsv", true, 1, 2, 3},
  };
  for (const auto& f : files) {
    SCOPED_TRACE(f.file);
    const std::string path = kGlueDir + "/" + f.file;
    const auto lines = raw_lines(path);
    const size_t first_data = f.has_header ? 1 : 0;
    ASSERT_GT(lines.size(), first_data);

    const auto examples = glue::read_examples(f.task, path);
    ASSERT_EQ(examples.size(), lines.size() - first_data);
    const auto& ex = examples.front();
    const auto raw = split(lines[first_data]);
    EXPECT_EQ(ex.line, static_cast<int64_t>(first_data + 1));
    EXPECT_EQ(ex.text_a, raw.at(f.col_a));
    if (f.col_b >= 0) {
      ASSERT_TRUE(ex.text_b.has_value());
      EXPECT_EQ(*ex.text_b, raw.at(f.col_b));
    } else {
      EXPECT_FALSE(ex.text_b.has_value());
    }
    ASSERT_TRUE(ex.label.has_value());
    const auto& info = glue::info(f.task);
    if (info.is_regression) {
      EXPECT_DOUBLE_EQ(*ex.label, std::strtod(raw.at(f.col_label).c_str(), nullptr));
    } else {
      EXPECT_EQ(info.label_names.at(static_cast<size_t>(*ex.label)), raw.at(f.col_label));
    }
    EXPECT_EQ(examples.back().line, static_cast<int64_t>(lines.size()));
  }
  EXPECT_EQ(glue::dev_file(Task::SST2, kGlueDir),
            std::filesystem::path(kGlueDir) / "SST-2/dev.tsv");
}

TEST(GlueTasks, FixturesInTheStandardFormatParse) {
  const auto qqp = glue::read_examples(Task::QQP, glue::train_file(Task::QQP, kFixtureGlueDir));
  ASSERT_EQ(qqp.size(), 3u);
  EXPECT_EQ(qqp[0].text_a, "How do I learn C++ quickly?");
  EXPECT_EQ(*qqp[0].text_b, "What is the fastest way to learn C++?");
  EXPECT_EQ(*qqp[0].label, 1.0);
  EXPECT_EQ(qqp[2].text_a, "What does \"quoting off\" mean?");
  EXPECT_EQ(glue::read_examples(Task::QQP, glue::dev_file(Task::QQP, kFixtureGlueDir)).size(), 2u);

  const auto train = glue::read_examples(Task::MNLI, glue::train_file(Task::MNLI, kFixtureGlueDir));
  ASSERT_EQ(train.size(), 3u);
  EXPECT_EQ(train[1].text_a, "He walked home slowly.");
  EXPECT_EQ(*train[1].text_b, "He ran home.");
  EXPECT_EQ(*train[1].label, 2.0);  // contradiction
  const auto matched =
      glue::read_examples(Task::MNLI, glue::dev_file(Task::MNLI, kFixtureGlueDir, 0));
  ASSERT_EQ(matched.size(), 2u);
  EXPECT_EQ(*matched[0].label, 0.0);  // entailment
  const auto mismatched =
      glue::read_examples(Task::MNLI, glue::dev_file(Task::MNLI, kFixtureGlueDir, 1));
  ASSERT_EQ(mismatched.size(), 2u);
  EXPECT_EQ(*mismatched[1].label, 1.0);  // neutral
  EXPECT_THROW(glue::dev_file(Task::MNLI, kFixtureGlueDir, 2), c10::Error);
}

TEST(GlueTasks, TestFilesHaveNoLabel) {
  const auto path = write_temp("rte_test.tsv", "index\tsentence1\tsentence2\n0\tA \"b.\tC.\n");
  const auto examples = glue::read_examples(Task::RTE, path);
  ASSERT_EQ(examples.size(), 1u);
  EXPECT_EQ(examples[0].text_a, "A \"b.");
  EXPECT_FALSE(examples[0].label.has_value());
  const auto cola =
      glue::read_examples(Task::CoLA, write_temp("cola_test.tsv", "index\tsentence\n0\tHi.\n"));
  ASSERT_EQ(cola.size(), 1u);
  EXPECT_EQ(cola[0].text_a, "Hi.");
  EXPECT_FALSE(cola[0].label.has_value());
}

TEST(GlueTasks, StreamsReadAsTheirFilesDo) {
  const auto path = glue::train_file(Task::MNLI, kFixtureGlueDir);
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  const auto from_file = glue::read_examples(Task::MNLI, path);
  const auto from_stream = glue::read_examples(Task::MNLI, text, "mnli (in memory)");
  ASSERT_EQ(from_stream.size(), from_file.size());
  for (size_t i = 0; i < from_file.size(); ++i) {
    EXPECT_EQ(from_stream[i].text_a, from_file[i].text_a);
    EXPECT_EQ(from_stream[i].text_b, from_file[i].text_b);
    EXPECT_EQ(from_stream[i].label, from_file[i].label);
    EXPECT_EQ(from_stream[i].line, from_file[i].line);
  }
  std::istringstream bad("question1\tquestion2\tis_duplicate\nA?\tB?\t7\n");
  try {
    glue::read_examples(Task::QQP, bad, "qqp (in memory)");
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("glue: qqp (in memory):2: unknown qqp label \"7\""),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

void expect_error(Task task, const std::string& path, const std::string& needle) {
  try {
    glue::read_examples(task, path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(needle), std::string::npos)
        << e.what_without_backtrace();
  }
}

TEST(GlueTasks, MalformedFilesNameFileAndLine) {
  const auto columns =
      write_temp("columns.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\t0\n1\ta\t0\n");
  expect_error(Task::WNLI, columns, columns + ":3: expected 4 tab-separated columns, found 3");
  const auto label = write_temp("label.tsv", "index\tquestion\tsentence\tlabel\n0\tq\ts\tmaybe\n");
  expect_error(Task::QNLI, label, label + ":2: unknown qnli label \"maybe\"");
  const auto score = write_temp(
      "score.tsv",
      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
      "0\tg\tf\ty\t0\tn\tn\ta\tb\t4.2x\n");
  expect_error(Task::STSB, score, score + ":2: score \"4.2x\" is not a number");
  const auto header = write_temp("header.tsv", "sentence\tlabel\nx\t1\n");
  expect_error(Task::RTE, header, header + ":1: the header lacks");
  const std::string missing = ::testing::TempDir() + "glue_tasks_test_missing.tsv";
  expect_error(Task::SST2, missing, "cannot open " + missing);
}

TEST(GlueTasks, TaskNamesAndInfo) {
  EXPECT_EQ(glue::task_from_name("SST-2"), Task::SST2);
  EXPECT_EQ(glue::task_from_name("sst2"), Task::SST2);
  EXPECT_EQ(glue::task_from_name("STS-B"), Task::STSB);
  EXPECT_EQ(glue::task_from_name("Mnli"), Task::MNLI);
  try {
    glue::task_from_name("squad");
    ADD_FAILURE();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("sts-b/stsb"), std::string::npos);
  }
  EXPECT_EQ(glue::info(Task::CoLA).metric_names, std::vector<std::string>{"mcc"});
  EXPECT_EQ(glue::info(Task::QQP).metric_names, (std::vector<std::string>{"accuracy", "f1"}));
  EXPECT_TRUE(glue::info(Task::STSB).is_regression);
  EXPECT_FALSE(glue::info(Task::SST2).is_pair);
  EXPECT_EQ(glue::info(Task::MNLI).dev_files.size(), 2u);
}

}  // namespace

// ProgressBar's plain-line output (what logs and CI see).
#include "tlora/core/progress.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace {

std::string written(std::FILE* file) {
  std::rewind(file);
  std::string text;
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text.push_back(static_cast<char>(c));
  return text;
}

std::string last_line(const std::string& text) {
  const size_t end = text.find_last_of('\n');
  const size_t begin = text.find_last_of('\n', end - 1);
  return text.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1));
}

TEST(ProgressBar, FinishReportsEveryStep) {
  std::FILE* file = std::tmpfile();
  tlora::ProgressBar bar("train", 10, file);
  for (int i = 1; i <= 10; ++i) bar.update(i);
  bar.finish("loss 0.5");
  const std::string line = last_line(written(file));
  EXPECT_NE(line.find("train 100% 10/10"), std::string::npos) << line;
  EXPECT_NE(line.find("total loss 0.5"), std::string::npos) << line;
  std::fclose(file);
}

TEST(ProgressBar, StopReportsWhereTheLoopStopped) {
  std::FILE* file = std::tmpfile();
  tlora::ProgressBar bar("train", 10, file);
  for (int i = 1; i <= 3; ++i) bar.update(i);
  bar.stop("interrupted");
  bar.finish();  // a bar ends once
  const std::string text = written(file);
  const std::string line = last_line(text);
  EXPECT_NE(line.find("train  30% 3/10"), std::string::npos) << line;
  EXPECT_NE(line.find("interrupted"), std::string::npos) << line;
  EXPECT_EQ(text.find("100%"), std::string::npos) << text;
  std::fclose(file);
}

}  // namespace

#include "fuse/file_access.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace ukai::fuse {
namespace {

class FileAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ukai-access-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/access";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void WriteRaw(const std::string& text) { std::ofstream(path_) << text; }

  std::string dir_, path_;
  const Access defaults_{0, 0, 0600};
};

TEST_F(FileAccessTest, AChangeSurvivesReopeningAndTheFileIsPrivate) {
  auto a = FileAccess::Open(path_, defaults_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->Get(5, false), defaults_);
  ASSERT_TRUE((*a)->Set(5, Access{107, 114, 0660}).ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto again = FileAccess::Open(path_, defaults_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->Get(5, false), (Access{107, 114, 0660}));
  EXPECT_EQ((*again)->Get(6, false), defaults_);  // another disk keeps the defaults
  // Back to the defaults: the entry goes away.
  ASSERT_TRUE((*again)->Set(5, defaults_).ok());
  std::ifstream in(path_);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(all, FileAccess::Encode({}));
}

TEST_F(FileAccessTest, AReadOnlyFileNeverShowsAWriteBit) {
  auto a = FileAccess::Open("", defaults_);
  ASSERT_TRUE((*a)->Set(9, Access{1, 2, 0666}).ok());
  EXPECT_EQ((*a)->Get(9, true).mode, 0444u);
  EXPECT_EQ((*a)->Get(10, true).mode, 0400u);
}

TEST_F(FileAccessTest, AMalformedTableIsRefusedNamingTheLine) {
  const std::pair<std::string, std::string> bad[] = {
      {"", "line 1"},
      {"something else\n", "line 1"},
      {"ukai-fuse access v1\n5 0 0 600", "no final newline"},
      {"ukai-fuse access v1\n5 0 0\n", "line 2: expected"},
      {"ukai-fuse access v1\n0 0 0 600\n", "bad number"},
      {"ukai-fuse access v1\n5 -1 0 600\n", "bad number"},
      {"ukai-fuse access v1\n5 0 0 99\n", "bad mode"},
      {"ukai-fuse access v1\n5 0 0 17777\n", "bad mode"},
      {"ukai-fuse access v1\n5 0 0 600\n5 1 1 600\n", "line 3: inode repeated"},
  };
  for (const auto& [text, want] : bad) {
    WriteRaw(text);
    auto a = FileAccess::Open(path_, defaults_);
    ASSERT_FALSE(a.ok()) << text;
    EXPECT_NE(a.status().message().find(path_), std::string::npos) << a.status();
    EXPECT_NE(a.status().message().find(want), std::string::npos) << a.status();
  }
}

TEST_F(FileAccessTest, SetRefusesAnImpossibleMode) {
  auto a = FileAccess::Open(path_, defaults_);
  EXPECT_FALSE((*a)->Set(5, Access{0, 0, 010000}).ok());
  EXPECT_FALSE((*a)->Set(0, Access{0, 0, 0600}).ok());
  EXPECT_FALSE(std::filesystem::exists(path_));  // nothing was saved
}

}  // namespace
}  // namespace ukai::fuse

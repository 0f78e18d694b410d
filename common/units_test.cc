#include "common/units.h"

#include <gtest/gtest.h>

namespace ukai {
namespace {

TEST(ParseSizeTest, AcceptsSuffixes) {
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_EQ(*ParseSize("4K"), 4096u);
  EXPECT_EQ(*ParseSize("20G"), 20ull << 30);
  EXPECT_EQ(*ParseSize("1TiB"), 1ull << 40);
  EXPECT_EQ(*ParseSize("2m"), 2ull << 20);
}

TEST(ParseSizeTest, RejectsNegativeGarbageAndOverflow) {
  EXPECT_FALSE(ParseSize("-1").ok());
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("G").ok());
  EXPECT_FALSE(ParseSize("10X").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseSize("20000000P").ok());
}

TEST(ValidateDiskNameTest, AllowsOnlyTheDocumentedAlphabet) {
  EXPECT_TRUE(ValidateDiskName("vm-7_disk.0").ok());
  EXPECT_TRUE(ValidateDiskName(std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateDiskName(std::string(65, 'a')).ok());
  EXPECT_FALSE(ValidateDiskName("").ok());
  EXPECT_FALSE(ValidateDiskName("a/b").ok());
  EXPECT_FALSE(ValidateDiskName("a@b").ok());
  EXPECT_FALSE(ValidateDiskName("..").ok());
  EXPECT_FALSE(ValidateDiskName("sp ace").ok());
}

}  // namespace
}  // namespace ukai

#include "common/crc32c.h"

namespace ukai {
namespace {
TEST(Crc32cTest, MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string big(10000, 'x');
  EXPECT_EQ(Crc32c(big.data(), big.size()),
            Crc32c(big.data() + 5000, 5000, Crc32c(big.data(), 5000)));
}
}  // namespace
}  // namespace ukai

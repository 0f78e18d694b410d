#include "common/units.h"

#include <gtest/gtest.h>

#include <random>

#include "common/crc32c.h"

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

namespace ukai {
namespace {
TEST(Crc32cTest, MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string big(10000, 'x');
  EXPECT_EQ(Crc32c(big.data(), big.size()),
            Crc32c(big.data() + 5000, 5000, Crc32c(big.data(), 5000)));
}

// The striped loop against a bit-at-a-time CRC, at lengths around its stripe
// sizes and with a running CRC carried in.
TEST(Crc32cTest, EveryLengthMatchesABitwiseCrc) {
  auto bitwise = [](const std::string& s, uint32_t crc) {
    crc = ~crc;
    for (unsigned char ch : s) {
      crc ^= ch;
      for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
  };
  std::mt19937 rng(7);
  for (size_t n : {0, 1, 7, 8, 4079, 4080, 4081, 4095, 4096, 4097, 8160, 8161, 12288, 65536}) {
    std::string s(n, '\0');
    for (char& ch : s) ch = static_cast<char>(rng());
    for (uint32_t start : {0u, 0xdeadbeefu}) {
      EXPECT_EQ(Crc32c(s.data(), s.size(), start), bitwise(s, start)) << n;
    }
  }
}
}  // namespace
}  // namespace ukai

#include "comm/data_parallel_config.h"

#include "gtest/gtest.h"

namespace moeserve {
namespace {

TEST(DataParallelConfig, SingleHostRunsEveryRank) {
  DataParallelConfig c;
  c.size = 4;
  ASSERT_TRUE(c.validate().ok());
  EXPECT_EQ(c.local_ranks(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_TRUE(c.hosts_rank0());
  EXPECT_EQ(c.group_options(2).rank, 2);
  EXPECT_EQ(c.group_options(2).world_size, 4);
}

TEST(DataParallelConfig, TwoHosts) {
  DataParallelConfig lead;
  lead.size = 8;
  lead.size_local = 4;
  lead.address = "10.0.0.1";
  lead.rpc_port = 13345;
  ASSERT_TRUE(lead.validate().ok());
  EXPECT_EQ(lead.local_ranks(), (std::vector<int>{0, 1, 2, 3}));
  DataParallelConfig second = lead;
  second.start_rank = 4;
  second.headless = true;
  ASSERT_TRUE(second.validate().ok());
  EXPECT_EQ(second.local_ranks(), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_FALSE(second.hosts_rank0());
  EXPECT_EQ(second.group_options(5).master_addr, "10.0.0.1");
  EXPECT_EQ(second.group_options(5).master_port, 13345);
  second.size_local = -1;  // default: the rest of the ranks
  EXPECT_EQ(second.local_size(), 4);
}

TEST(DataParallelConfig, RejectsInconsistentFlags) {
  auto bad = [](auto edit) {
    DataParallelConfig c;
    c.size = 4;
    edit(c);
    return c.validate();
  };
  EXPECT_FALSE(bad([](auto& c) { c.size = 0; }).ok());
  EXPECT_FALSE(bad([](auto& c) { c.start_rank = 4; }).ok());
  EXPECT_FALSE(bad([](auto& c) { c.start_rank = -1; }).ok());
  const Status over = bad([](auto& c) {
    c.start_rank = 2;
    c.size_local = 3;
  });
  EXPECT_FALSE(over.ok());
  EXPECT_NE(over.message().find("--data-parallel-size-local 3"), std::string::npos);
  EXPECT_FALSE(bad([](auto& c) {
                 c.headless = true;
                 c.size_local = 0;
               }).ok());
  EXPECT_FALSE(bad([](auto& c) { c.rpc_port = 70000; }).ok());
  EXPECT_FALSE(bad([](auto& c) { c.address = ""; }).ok());
}

}  // namespace
}  // namespace moeserve

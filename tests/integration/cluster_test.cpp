// Staged campaigns on a clustered broker (issue 18): a two-node ejabberd
// cluster from Debian (tests/support/ejabberd.hpp), real ota-agent processes
// spread over both nodes, the controller on node 1. ejabberd replicates live
// messages between nodes but indexes retained messages per node, so the
// protocol must not depend on retained messages crossing nodes
// (docs/protocol.md, "What a broker must provide").
#include <gtest/gtest.h>

#include <map>

#include "support/ejabberd.hpp"
#include "support/fleet.hpp"

namespace ota::test {
namespace {

class ClusterCampaigns : public Fleet {
 protected:
  void SetUp() override {
    Fleet::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!EjabberdCluster::available()) GTEST_SKIP() << "ejabberd is not installed (scripts/install-deps.sh)";
    cluster_ = std::make_unique<EjabberdCluster>(path("cluster"), 2);
    // The tools and the controller use node 1.
    use_broker(cluster_->url(0), EjabberdCluster::kUser, EjabberdCluster::kPassword);
  }
  void TearDown() override {
    Fleet::TearDown();
    cluster_.reset();
  }

  // A device that starts on `node` and fails over to the other one.
  Device& add_on(const std::string& id, int node) {
    Json brokers = Json::array({cluster_->url(node), cluster_->url(1 - node)});
    return add_device(id, true, {{"broker", brokers}, {"failover_after_s", 2}});
  }

  // Final results in the journal, per device.
  std::map<std::string, int> succeeded_results(const std::string& id) {
    std::map<std::string, int> finals;
    for (const auto& r : journal(id))
      if (r["type"] == "result" && r["report"]["phase"] == "succeeded") ++finals[r["report"]["device"].get<std::string>()];
    return finals;
  }

  std::string all_logs() { return logs() + cluster_->log(); }

  std::unique_ptr<EjabberdCluster> cluster_;
};

TEST_F(ClusterCampaigns, ANodeKilledMidCampaignItsDevicesMoveToTheOtherAndEveryResultCountsOnce) {
  ASSERT_NE(cluster_->members().find(","), std::string::npos) << cluster_->members();
  // Four devices per wave, two of them on each node.
  const std::vector<std::uint32_t> waves{25, 50, 100};
  std::vector<std::pair<std::string, int>> ids;
  for (std::size_t w = 0; w < waves.size(); ++w)
    for (const auto& id : ids_in_wave("clustered", waves, w, 4, "c" + std::to_string(w) + "-"))
      ids.emplace_back(id, static_cast<int>(ids.size() % 2));
  for (const auto& [id, node] : ids) add_on(id, node);  // provisioned: in the registry
  auto p = publish("clustered", {"--waves", "25,50,100", "--soak", "2s"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  // Started after the publication: the devices on node 2 do not see the
  // retained document, which node 1 holds; they get it when the controller
  // publishes it again on connecting (a live message crosses nodes).
  for (auto& d : devices_) start(d);
  run_controller("clustered");
  ASSERT_TRUE(eventually([&] { return decisions("clustered").size() >= 1; }, 60s)) << all_logs();
  // Wave 2 is open: node 2 dies with the devices of waves 2 and 3 on it.
  cluster_->kill9(1);
  ASSERT_EQ(controller_->wait(120s), 0) << all_logs();
  for (auto& d : devices_) EXPECT_TRUE(updated(d)) << d.id;
  EXPECT_EQ(decisions("clustered"), (std::vector<std::string>{"open-wave", "open-wave", "complete"}));
  // 0 lost, 0 duplicated: one succeeded result per device in the journal.
  const auto finals = succeeded_results("clustered");
  EXPECT_EQ(finals.size(), ids.size());
  for (const auto& [d, n] : finals) EXPECT_EQ(n, 1) << d;
  Json st = status("clustered");
  std::uint64_t succeeded = 0;
  for (const auto& w : st["controller_status"]["waves"]) succeeded += w["succeeded"].get<std::uint64_t>();
  EXPECT_EQ(succeeded, ids.size());
  // Every device of node 2 moves to node 1 (its log says so), those that
  // finished before the kill too (within failover_after_s and a backoff).
  const std::string node1 = "connected to 127.0.0.1:" + std::to_string(cluster_->port(0));
  for (std::size_t i = 1; i < devices_.size(); i += 2)
    EXPECT_TRUE(eventually([&] { return slurp(devices_[i].dir + "/log").find(node1) != std::string::npos; }, 30s))
        << devices_[i].id << ": " << slurp(devices_[i].dir + "/log");
}

TEST_F(ClusterCampaigns, ADeviceComingOnlineOnANodeWithoutTheDocumentGetsItFromTheController) {
  // The first wave soaks for an hour: the controller keeps running.
  const auto first = ids_in_wave("greeted", {50, 100}, 0, 1, "g-");
  add_on(first.front(), 1);
  auto p = publish("greeted", {"--waves", "50,100", "--soak", "1h"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  run_controller("greeted");
  std::this_thread::sleep_for(2s);  // connected, its document published (on node 1)
  // The device comes online on node 2, which holds no retained document:
  // the controller sends it the document as it says it is online. (Without
  // that, it would wait for the republication, 30 s after the fleet went quiet.)
  start(devices_.front());
  Observer obs(cluster_->port(1), EjabberdCluster::kUser, EjabberdCluster::kPassword);
  ASSERT_TRUE(eventually([&] { return obs.count("greeted", cp::Phase::kSucceeded) == 1; }, 20s)) << all_logs();
  EXPECT_TRUE(updated(devices_.front()));
}

TEST_F(ClusterCampaigns, AControllerOnAnotherNodeAsksForTheStatesItsNodeDoesNotHold) {
  // Published through node 2, with no controller running: every device (on
  // node 2) installs, and its results are retained on node 2 only. The
  // controller then starts on node 1, whose retained store holds none of
  // them: it asks every device to say its state again, and counts each once.
  for (int i = 0; i < 4; ++i) add_on("r-" + std::to_string(i), 1);
  use_broker(cluster_->url(1), EjabberdCluster::kUser, EjabberdCluster::kPassword);
  auto p = publish("late", {"--waves", "100"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  use_broker(cluster_->url(0), EjabberdCluster::kUser, EjabberdCluster::kPassword);
  for (auto& d : devices_) start(d);
  Observer obs(cluster_->port(1), EjabberdCluster::kUser, EjabberdCluster::kPassword);
  ASSERT_TRUE(eventually([&] { return obs.count("late", cp::Phase::kSucceeded) == devices_.size(); }, 60s)) << all_logs();
  EXPECT_TRUE(succeeded_results("late").empty());
  run_controller("late");
  ASSERT_EQ(controller_->wait(60s), 0) << all_logs();
  const auto finals = succeeded_results("late");
  EXPECT_EQ(finals.size(), devices_.size());
  for (const auto& [d, n] : finals) EXPECT_EQ(n, 1) << d;
}

}  // namespace
}  // namespace ota::test

// The durable spool in a Thing's pipeline, as docs/config.md (spool) states it, with a real spool
// file in a temporary directory, a fake upstream and a fake clock.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>


namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;

class PipelineSpool : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_NE(spool_.get(), nullptr); }
    temporary_spool spool_;
    spool::store* const store_ = spool_.get();
};

// config.md, spool: a QoS 1 publish made while the Thing is offline is stored and answered
// "spooled"; once connected the messages go out oldest first, and each is deleted after the
// broker's PUBACK.
TEST_F(PipelineSpool, OfflineQos1IsSpooledThenSentInOrderAndDeletedOnPuback) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, store_);
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 3; ++i) rig.publish(app, i, "dt/" + std::to_string(i));
    for (std::uint32_t i = 1; i <= 3; ++i) EXPECT_EQ(app->code_of(i), ipc::errc::spooled);
    EXPECT_EQ(store_->count("gateway-01"), 3U);
    EXPECT_EQ(rig.counters.spooled, 3U);
    EXPECT_EQ(rig.pipe->pending_publishes(app->flow()), 0U);  // answered: no longer counts
    EXPECT_TRUE(rig.up.publishes.empty());
    rig.connect();
    EXPECT_THAT(rig.up.published_topics(), ElementsAre("dt/1", "dt/2", "dt/3"));
    rig.up.answer_all_publishes();
    EXPECT_EQ(store_->count("gateway-01"), 0U);
    EXPECT_EQ(app->published.size(), 3U);  // "spooled" was the only result
}

// A shutdown waits for the publishes in flight (pipeline::unfinished()) and hears of each one
// settling: spooled messages too, or a shutdown whose last message in flight is a spooled one
// would wait out its whole grace period.
TEST_F(PipelineSpool, ASpooledMessageSettlingIsReportedToAWaitingShutdown) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, store_);
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/1");
    rig.publish(app, 2, "dt/2");
    const auto settled_when_spooled = rig.settled;
    rig.connect();
    ASSERT_EQ(rig.up.publishes.size(), 2U);
    rig.pipe->stop_accepting();
    EXPECT_EQ(rig.pipe->unfinished(), 2U);
    rig.up.answer_publish(0);
    EXPECT_EQ(rig.settled, settled_when_spooled + 1);
    rig.up.answer_publish(1);
    EXPECT_EQ(rig.settled, settled_when_spooled + 2);
    EXPECT_EQ(rig.pipe->unfinished(), 0U);
    EXPECT_EQ(store_->count("gateway-01"), 0U);
}

// config.md, spool: "or when the Thing still has spooled messages (so that nothing overtakes them)".
TEST_F(PipelineSpool, NothingOvertakesSpooledMessages) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits, {}, store_);
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/1");
    rig.publish(app, 2, "dt/2");
    rig.connect();
    rig.publish(app, 3, "dt/3");  // online, but rows wait: spooled behind them
    EXPECT_EQ(app->code_of(3), ipc::errc::spooled);
    rig.clk.advance(*rig.pipe, 1s);
    rig.up.answer_all_publishes();
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_THAT(rig.up.published_topics(), ElementsAre("dt/1", "dt/2", "dt/3"));
    rig.up.answer_all_publishes();
    EXPECT_EQ(store_->count("gateway-01"), 0U);
    rig.publish(app, 4, "dt/4");  // the spool is empty again: the normal way
    rig.clk.advance(*rig.pipe, 1s);
    rig.up.answer_all_publishes();
    EXPECT_EQ(app->code_of(4), ipc::errc::ok);
}

// config.md, spool: a spooled message the broker refuses is deleted (and logged); one the daemon
// stopped before the PUBACK stays and is sent again after the restart.
TEST_F(PipelineSpool, RefusedRowsGoAndRowsCutOffByAStopStay) {
    {
        pipeline_rig rig(pipeline_rig::unlimited(), {}, store_);
        auto app = rig.session(1);
        rig.publish(app, 1, "dt/refused");
        rig.publish(app, 2, "dt/cut-off");
        rig.connect();
        ASSERT_EQ(rig.up.publishes.size(), 2U);
        rig.up.answer_publish(0, 0x87);
        rig.pipe->stop_accepting();
        rig.up.answer_publish(1, mqtt::reason::unspecified_error, mqtt::local_error::session_closed);
        EXPECT_EQ(store_->count("gateway-01"), 1U);
    }
    pipeline_rig restarted(pipeline_rig::unlimited(), {}, store_);
    restarted.connect();
    EXPECT_THAT(restarted.up.published_topics(), ElementsAre("dt/cut-off"));
}

// config.md, spool: max_messages reached: refused with spool_full, nothing stored, nothing sent.
TEST_F(PipelineSpool, FullSpoolRefusesWithSpoolFull) {
    store_->set_limits({.max_bytes = std::nullopt, .max_messages = 1});
    pipeline_rig rig(pipeline_rig::unlimited(), {}, store_);
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/1");
    rig.publish(app, 2, "dt/2");
    EXPECT_EQ(app->code_of(1), ipc::errc::spooled);
    EXPECT_EQ(app->code_of(2), ipc::errc::spool_full);
    EXPECT_EQ(rig.pipe->status().spool_rejected, 1U);
    EXPECT_EQ(store_->count("gateway-01"), 1U);
}

// The spool is drained a bounded batch at a time (64 in memory per Thing), so a large backlog
// does not fill the daemon's memory; every row still goes out once, in order.
TEST_F(PipelineSpool, ALargeBacklogDrainsInBatchesEveryRowOnce) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, store_);
    auto app = rig.session(1);
    constexpr std::uint32_t n = 300;
    for (std::uint32_t i = 1; i <= n; ++i) rig.publish(app, i, "dt/" + std::to_string(i));
    rig.connect();
    EXPECT_LE(rig.up.publishes.size(), 64U);
    std::size_t answered = 0;
    while (answered < rig.up.publishes.size()) rig.up.answer_publish(answered++);
    ASSERT_EQ(rig.up.publishes.size(), n);
    for (std::uint32_t i = 0; i < n; ++i) EXPECT_EQ(rig.up.publishes[i].msg.topic, "dt/" + std::to_string(i + 1));
    EXPECT_EQ(store_->count("gateway-01"), 0U);
}

}  // namespace
}  // namespace thingmux::thing::testing

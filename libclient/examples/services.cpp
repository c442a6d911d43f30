// Example: an app that reports its firmware version in the Thing's classic shadow and runs the
// "reboot" jobs AWS IoT sends it (here it only pretends to reboot).
//
//   thingmux-example-services --firmware 1.4.2 --jobs 1
//
// Needs thingmuxd's jobs: block for the Thing (it hands "reboot" jobs over on
// $thingmux/jobs/reboot) and app rules granting $aws/things/THING/# and $thingmux/jobs/reboot.
// The job handler runs on the library thread: it only queues the job; the main thread does the
// work and reports the outcome.
#include <thingmux/client.hpp>

#include <CLI/CLI.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iostream>
#include <mutex>
#include <string>

int main(int argc, char** argv) {
    CLI::App app{"Reports a firmware version in the Thing's shadow and runs its \"reboot\" jobs through thingmuxd."};
    std::string firmware = "1.0.0";
    std::uint64_t jobs_to_run = 1;
    std::string socket;
    app.add_option("--firmware", firmware, "Version to report in state.reported.firmware")->capture_default_str();
    app.add_option("--jobs", jobs_to_run, "Reboot jobs to run before exiting (0: report the shadow only)")
        ->capture_default_str();
    app.add_option("--socket", socket, "thingmuxd's socket [default: $THINGMUX_SOCKET or /run/thingmux/thingmux.sock]");
    CLI11_PARSE(app, argc, argv);

    thingmux::options opts;
    opts.socket_path = socket;
    thingmux::client client(opts);
    client.start();
    if (auto r = client.connect().get(); !r) {
        std::cerr << "cannot connect to thingmuxd: " << r.message << '\n';
        return 3;
    }

    // The shadow: the reported section is the device's to write.
    const auto update = client.shadow_update("", R"({"state":{"reported":{"firmware":")" + firmware + R"("}}})").get();
    if (!update.outcome) {
        std::cerr << "shadow update not answered: " << to_string(update.outcome.code) << ": " << update.outcome.message
                  << '\n';
        return 1;
    }
    if (!update.accepted) {
        std::cerr << "shadow update rejected by AWS IoT: " << update.code << " " << update.error_message << '\n';
        return 1;
    }
    std::cout << "shadow version " << update.version << ": firmware " << firmware << '\n';
    if (jobs_to_run == 0) {
        return 0;
    }

    std::mutex m;
    std::condition_variable cv;
    std::deque<thingmux::job> jobs;
    auto registered = client.on_job("reboot", [&](const thingmux::job& j) {
        std::lock_guard lk(m);
        jobs.push_back(j);
        cv.notify_one();
    });
    if (auto r = registered.get(); !r) {
        std::cerr << "cannot register for reboot jobs: " << r.message << '\n';
        return 1;
    }
    for (std::uint64_t done = 0; done < jobs_to_run; ++done) {
        thingmux::job j;
        {
            std::unique_lock lk(m);
            cv.wait(lk, [&] { return !jobs.empty(); });
            j = std::move(jobs.front());
            jobs.pop_front();
        }
        std::cout << "job " << j.id << ": " << j.document << '\n';
        client.update_job(j.id, "IN_PROGRESS", {{"step", "draining"}}).get();
        const auto end = client.update_job(j.id, "SUCCEEDED", {{"rebooted", "pretend"}}).get();
        std::cout << "job " << j.id << ": "
                  << (end ? "SUCCEEDED reported" : "report failed: " + end.error_message + end.outcome.message) << '\n';
    }
    return 0;
}

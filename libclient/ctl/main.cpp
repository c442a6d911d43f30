// thingmuxctl: publish, subscribe and inspect through thingmuxd, in the style of
// mosquitto_pub / mosquitto_sub. A client of libthingmux like any other app.
#include "admin_commands.hpp"
#include "bus_commands.hpp"
#include "commands.hpp"
#include "metrics_command.hpp"

#include <thingmux/client.hpp>

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

std::string default_socket_text() {
    if (const char* env = std::getenv("THINGMUX_SOCKET"); env != nullptr && *env != '\0') {
        return std::string(env) + " (from THINGMUX_SOCKET)";
    }
    return std::string(thingmux::default_socket_path) + " (THINGMUX_SOCKET overrides)";
}

constexpr const char* exit_codes_text =
    "Exit codes: 0 ok, 1 refused by the daemon or broker, 2 usage error, 3 thingmuxd unavailable, 4 timeout, "
    "5 rejected by AWS IoT (shadow, jobs).";

}  // namespace

int main(int argc, char** argv) {
    using namespace thingmux::ctl;

    CLI::App app{
        "thingmuxctl: publish, subscribe and check status through thingmuxd, the shared MQTT session of "
        "this device's AWS IoT Thing; use its Device Shadows and Jobs; list its clients and reload it (over "
        "D-Bus, or the IPC socket without a bus).",
        "thingmuxctl"};
    app.footer(exit_codes_text);
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("thingmuxctl ") + THINGMUX_VERSION);

    common_options common;
    app.add_option("--socket", common.socket, "thingmuxd's socket [default: " + default_socket_text() + "]")
        ->option_text("PATH");
    app.add_option("--app-name", common.app_name, "Name shown in the daemon's logs and on D-Bus")
        ->capture_default_str();
    app.add_option("--thing", common.thing, "Thing to use when the daemon serves several [default: the daemon's]");
    app.add_option("--connect-timeout", common.connect_timeout_s, "Seconds to wait for the daemon's welcome")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);

    // pub
    pub_options pub;
    auto* pub_cmd = app.add_subcommand("pub", "Publish one message (like mosquitto_pub)");
    pub_cmd->fallthrough();
    pub_cmd->footer(exit_codes_text);
    pub_cmd->add_option("-t,--topic", pub.topic, "Topic to publish to")->required();
    auto* m = pub_cmd->add_option("-m,--message", pub.message, "Payload");
    auto* f = pub_cmd->add_option("-f,--file", pub.file, "Send the contents of FILE as the payload")
                  ->check(CLI::ExistingFile)
                  ->option_text("FILE");
    auto* s = pub_cmd->add_flag("-s,--stdin-file", pub.stdin_payload, "Read the payload from stdin (all of it)");
    auto* n = pub_cmd->add_flag("-n,--null-message", pub.null_message, "Send an empty payload");
    m->excludes(f, s, n);
    f->excludes(s, n);
    s->excludes(n);
    pub_cmd->add_option("-q,--qos", pub.qos, "QoS: 1 waits for the broker's PUBACK")
        ->capture_default_str()
        ->check(CLI::IsMember({0, 1}));
    pub_cmd->add_flag("-r,--retain", pub.retain, "Ask the broker to retain the message");
    pub_cmd->add_option("--user-property", pub.user_properties, "MQTT 5 user property (repeatable)")
        ->option_text("KEY VALUE")
        ->allow_extra_args(false);
    pub_cmd->add_option("--content-type", pub.content_type, "MQTT 5 content type, e.g. application/json");
    pub_cmd->add_option("--response-topic", pub.response_topic, "MQTT 5 response topic");
    pub_cmd->add_option("--correlation-data", pub.correlation_data, "MQTT 5 correlation data");
    pub_cmd->add_option("--message-expiry", pub.message_expiry, "MQTT 5 message expiry interval, seconds");
    pub_cmd->add_option("--timeout", pub.timeout_s, "Seconds to wait for the result")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    pub_cmd->add_flag("--quiet", pub.quiet, "Print nothing on success (notes such as \"spooled\" included)");

    // sub
    sub_options sub;
    auto* sub_cmd = app.add_subcommand("sub", "Subscribe and print messages (like mosquitto_sub)");
    sub_cmd->fallthrough();
    sub_cmd->footer(exit_codes_text);
    sub_cmd->add_option("-t,--topic", sub.topics, "Topic filter to subscribe to (repeatable)")
        ->required()
        ->allow_extra_args(false);
    sub_cmd->add_option("-q,--qos", sub.qos, "Maximum QoS of the subscriptions")
        ->capture_default_str()
        ->check(CLI::IsMember({0, 1}));
    sub_cmd->add_option("-C,--count", sub.count, "Exit after receiving this many messages")
        ->check(CLI::PositiveNumber);
    sub_cmd->add_flag("-v,--verbose", sub.verbose, "Print the topic before each payload");
    sub_cmd->add_option("-W,--timeout", sub.timeout_s, "Exit with code 4 after this many seconds")
        ->check(CLI::PositiveNumber);
    sub_cmd->add_flag("-N,--no-newline", sub.no_newline, "Do not print a newline after each payload");
    sub_cmd->add_flag("--properties", sub.properties, "Print MQTT 5 properties after each message (to stdout)");

    // status
    auto* status_cmd = app.add_subcommand(
        "status",
        "Show the daemon version, Thing, this client's id, the uplink state, the Thing's endpoint, transport and proxy, "
        "its certificate's expiry and its retained cache (from D-Bus) and the limits");
    status_cmd->fallthrough();
    status_cmd->footer(exit_codes_text);
    bool status_watch = false;
    bool status_json = false;
    status_cmd->add_flag("-w,--watch", status_watch,
                         "Print the Thing's link state, then one line per change with its reason, until interrupted "
                         "(exit 0) or thingmuxd goes away (exit 3)");
    status_cmd->add_flag("--json", status_json,
                         "With --watch: one JSON object per line: time, thing, state, reason, fatal, retry_in_ms")
        ->needs("--watch");

    // clients, reload: through the D-Bus management interface, or the IPC socket without a bus
    admin_options admin;
    std::string via_name = "auto";
    const auto add_admin_options = [&](CLI::App* cmd) {
        cmd->add_option("--via", via_name,
                        "auto: D-Bus when org.thingmux.Thingmux1 is on the system bus, else the IPC socket; "
                        "dbus; ipc [default: auto]")
            ->check(CLI::IsMember({"auto", "dbus", "ipc"}))
            ->option_text("auto|dbus|ipc");
        cmd->add_flag("-v,--verbose", admin.verbose, "Say which way thingmuxd was asked (D-Bus or the IPC socket)");
        cmd->footer(exit_codes_text);
    };
    auto* clients_cmd = app.add_subcommand(
        "clients",
        "List the apps connected to thingmuxd: pid, user, unit, app name, Thing, queued bytes, counters and "
        "subscriptions (D-Bus ListClients, or IPC list_clients; administrators see every app, other users their own)");
    add_admin_options(clients_cmd);
    auto* reload_cmd = app.add_subcommand(
        "reload", "Make thingmuxd re-read its configuration file, like systemctl reload thingmuxd; a file with errors "
                  "is refused with every problem listed and the configuration in force stays (D-Bus Reload, or IPC "
                  "reload for an administrator: root, or admin: true in apps:)");
    add_admin_options(reload_cmd);
    int rotate_timeout_s = 120;
    auto* rotate_cmd = app.add_subcommand(
        "rotate-certificate",
        "Make thingmuxd get a new key and certificate for the Thing now, over its own connection, and reconnect with "
        "them (D-Bus RotateCertificate; docs/identity.md). Waits for the outcome; the old pair stays when it fails");
    rotate_cmd->add_option("-W,--timeout", rotate_timeout_s, "Give up waiting after this many seconds [default: 120]")
        ->check(CLI::PositiveNumber);
    rotate_cmd->footer(exit_codes_text);

    // metrics
    metrics_options metrics;
    auto* metrics_cmd = app.add_subcommand(
        "metrics",
        "Print thingmuxd's metrics (OpenMetrics text, per Thing and per app; docs/metrics.md), read from its metrics "
        "socket; with --thing, only that Thing's series");
    metrics_cmd->add_option("--format", metrics.format,
                            "openmetrics, or prometheus for the text format 0.0.4 (node_exporter's textfile collector)")
        ->check(CLI::IsMember({"openmetrics", "prometheus"}))
        ->capture_default_str();
    metrics_cmd->add_option("--metrics-socket", metrics.socket,
                            "thingmuxd's metrics socket [default: $THINGMUX_METRICS_SOCKET, else metrics.sock next to "
                            "--socket or $THINGMUX_SOCKET, else /run/thingmux/metrics.sock]")
        ->option_text("PATH");
    metrics_cmd->add_option("-W,--timeout", metrics.timeout_s, "Seconds to wait for the answer")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    metrics_cmd->fallthrough();
    metrics_cmd->footer(exit_codes_text);

    // shadow
    shadow_options shadow;
    auto* shadow_cmd = app.add_subcommand(
        "shadow",
        "Read, update, delete or watch a Device Shadow of the Thing (classic, or named with --name); answers "
        "come to this command only (thingmuxd routes them by clientToken). See docs/services.md");
    shadow_cmd->footer(exit_codes_text);
    shadow_cmd->require_subcommand(1);
    const auto shadow_common = [&](CLI::App* sc) {
        sc->fallthrough();
        sc->footer(exit_codes_text);
        sc->add_option("--name", shadow.name,
                       "Named shadow (1 to 64 of A-Z a-z 0-9 : _ -) [default: the classic shadow]")
            ->option_text("NAME");
    };
    const auto shadow_timeout = [&](CLI::App* sc) {
        sc->add_option("-W,--timeout", shadow.timeout_s, "Seconds to wait for AWS IoT's answer")
            ->capture_default_str()
            ->check(CLI::PositiveNumber);
    };
    auto* shadow_get = shadow_cmd->add_subcommand(
        "get",
        "Print the shadow's document (JSON, one line, without clientToken). Offline, thingmuxd may answer from "
        "its cache (services.shadow_cache): a note on stderr says so, with the version");
    shadow_common(shadow_get);
    shadow_timeout(shadow_get);
    auto* shadow_update = shadow_cmd->add_subcommand(
        "update",
        "Send a state document, e.g. '{\"state\":{\"desired\":{\"on\":true}}}' (or - for stdin), or build "
        "one with --desired/--reported KEY=VALUE; print the accepted answer");
    shadow_common(shadow_update);
    shadow_timeout(shadow_update);
    auto* doc_opt =
        shadow_update->add_option("document", shadow.document, "The request document (JSON object), - for stdin")
            ->option_text("JSON");
    auto* desired_opt =
        shadow_update
            ->add_option("--desired", shadow.desired,
                         "KEY=VALUE in state.desired (repeatable); VALUE is JSON if it parses, else a string; "
                         "KEY= sets null (removes the key)")
            ->option_text("KEY=VALUE")
            ->allow_extra_args(false);
    auto* reported_opt =
        shadow_update
            ->add_option("--reported", shadow.reported, "KEY=VALUE in state.reported (repeatable), as --desired")
            ->option_text("KEY=VALUE")
            ->allow_extra_args(false);
    doc_opt->excludes(desired_opt, reported_opt);
    shadow_update->add_option("--version", shadow.version,
                              "Expected shadow version: AWS IoT rejects the update (409) if the shadow has another");
    auto* shadow_delete = shadow_cmd->add_subcommand("delete", "Delete the shadow; print the accepted answer");
    shadow_common(shadow_delete);
    shadow_timeout(shadow_delete);
    auto* shadow_watch = shadow_cmd->add_subcommand(
        "watch",
        "Print each delta (update/delta: desired differs from reported) or, with --documents, each update's "
        "previous and current documents (update/documents), one JSON per line, until interrupted");
    shadow_common(shadow_watch);
    shadow_watch->add_flag("--documents", shadow.documents, "Print update/documents instead of update/delta");
    shadow_watch->add_flag("-v,--verbose", shadow.verbose, "Print the topic before each payload");
    shadow_watch->add_option("-C,--count", shadow.count, "Exit after this many messages")->check(CLI::PositiveNumber);
    shadow_watch->add_option("-W,--timeout", shadow.watch_timeout_s, "Exit with code 4 after this many seconds")
        ->check(CLI::PositiveNumber);

    // jobs
    jobs_options jobs;
    auto* jobs_cmd =
        app.add_subcommand("jobs",
                           "List the Thing's pending AWS IoT jobs, or run a command for each job of an operation. See "
                           "docs/services.md");
    jobs_cmd->footer(exit_codes_text);
    jobs_cmd->require_subcommand(1);
    auto* jobs_list = jobs_cmd->add_subcommand("list", "Print the pending job executions: IN_PROGRESS, then QUEUED");
    jobs_list->fallthrough();
    jobs_list->footer(exit_codes_text);
    jobs_list->add_option("-W,--timeout", jobs.timeout_s, "Seconds to wait for AWS IoT's answer")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    auto* jobs_run = jobs_cmd->add_subcommand(
        "run",
        "Register for OPERATION (the jobDocument's \"operation\"; thingmuxd's jobs: block hands such jobs over) and, "
        "for each job: report IN_PROGRESS, run COMMAND with the job document on stdin and JOB_ID, JOB_OPERATION, "
        "JOB_EXECUTION_NUMBER in its environment, then report SUCCEEDED (exit status 0) or FAILED with statusDetails "
        "exit_status (or signal). Runs until interrupted, or --count jobs");
    jobs_run->fallthrough();
    jobs_run->footer(std::string(exit_codes_text) +
                     "\nExample: thingmuxctl jobs run reboot -- /usr/local/sbin/reboot-when-idle --grace 60");
    jobs_run->add_option("operation", jobs.operation, "The job operation to handle (1 to 64 of A-Z a-z 0-9 _ . -)")
        ->required();
    jobs_run->add_option("command", jobs.command, "The command and its arguments, after --")->required();
    jobs_run->add_option("-C,--count", jobs.count, "Exit after this many jobs")->check(CLI::PositiveNumber);
    jobs_run->add_option("-W,--timeout", jobs.timeout_s, "Seconds to wait for AWS IoT's answer to each status update")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);  // prints help, version or the error
        return rc == 0 ? exit_ok : exit_usage;
    }

    try {
        if (pub_cmd->parsed()) {
            if (!pub.message && !pub.file && !pub.stdin_payload && !pub.null_message) {
                std::cerr << "thingmuxctl pub: give the payload with one of -m, -f, -s or -n\n"
                          << "Run with --help for more information.\n";
                return exit_usage;
            }
            return run_pub(common, pub);
        }
        if (sub_cmd->parsed()) {
            return run_sub(common, sub);
        }
        if (shadow_cmd->parsed()) {
            for (auto* sc : {shadow_get, shadow_update, shadow_delete, shadow_watch}) {
                if (sc->parsed()) shadow.action = sc->get_name();
            }
            return run_shadow(common, shadow);
        }
        if (jobs_cmd->parsed()) {
            jobs.action = jobs_run->parsed() ? "run" : "list";
            return run_jobs(common, jobs);
        }
        if (metrics_cmd->parsed()) return run_metrics(common, metrics);
        admin.way = via_name == "dbus" ? via::dbus : via_name == "ipc" ? via::ipc : via::automatic;
        if (clients_cmd->parsed()) return run_clients(common, admin);
        if (reload_cmd->parsed()) return run_reload(common, admin);
        if (rotate_cmd->parsed()) return run_rotate_certificate(common, rotate_timeout_s);
        if (status_watch) return run_status_watch(common, status_json);
        return run_status(common);
    } catch (const std::exception& e) {
        std::cerr << "thingmuxctl: " << e.what() << '\n';
        return exit_unavailable;
    }
}

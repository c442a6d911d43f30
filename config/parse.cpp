// YAML -> configuration. Walks the yaml-cpp node tree with a fixed schema: every key is looked
// up in a known list (unknown keys are errors with a suggestion), every value is checked for
// type, syntax and range, and every problem is collected with the node's position.
//
// This file: the document (bytes that are not YAML text, more than one document, syntax errors)
// and its root mapping; the sections are parsed in parse_things.cpp, parse_apps.cpp,
// parse_settings.cpp and parse_mqtt.cpp, with the value reader of parser.hpp.
#include "config/config.hpp"
#include "config/parser.hpp"

#include "common/utf8.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <utility>

namespace thingmux::config {
namespace detail {

namespace {

constexpr std::array<std::string_view, 8> root_keys{"things", "apps", "ipc", "mqtt", "spool", "log", "tpm2_tcti", "metrics"};

}  // namespace

configuration parser::parse_root(const YAML::Node& root) {
    configuration c;
    if (root.IsNull()) {
        report({1, 1}, "", "the configuration is empty", "it needs at least 'things:' with one Thing");
        return c;
    }
    const auto top = mapping(root, "", root_keys);
    if (!top) return c;
    const auto* things = find(*top, "things");
    if (things == nullptr) {
        report(location_of(root), "things", "missing required key 'things'", "list at least one Thing: things: [{name: ..., endpoint: ...}]");
    } else if (const auto items = sequence(things->value, "things", "things: [{name: gateway-01, endpoint: ..., ca: ..., cert: ..., key: ...}]")) {
        if (items->empty()) error(things->key, "things", "at least one Thing is required", "add an entry under things:");
        for (std::size_t i = 0; i < items->size(); ++i) c.things.push_back(parse_thing((*items)[i], "things[" + std::to_string(i) + "]"));
        // Names and client ids must be unique: one connection per client id.
        for (std::size_t i = 0; i < c.things.size(); ++i) {
            for (std::size_t j = 0; j < i; ++j) {
                const auto& a = c.things[j];
                const auto& b = c.things[i];
                const auto at = [&](const char* key) {
                    const auto f = b.fields.find(key);
                    return f != b.fields.end() ? f->second : b.where;
                };
                const auto first = " first used by things[" + std::to_string(j) + "] at line " + std::to_string(a.where.line);
                if (!a.name.empty() && a.name == b.name) {
                    report(at("name"), "things[" + std::to_string(i) + "].name", "duplicate Thing name '" + b.name + "'",
                           "each Thing is listed once;" + first);
                } else if (!a.client_id.empty() && a.client_id == b.client_id) {
                    report(at(b.fields.contains("client_id") ? "client_id" : "name"), "things[" + std::to_string(i) + "].client_id",
                           "duplicate client id '" + b.client_id + "'",
                           "a broker allows one connection per client id, so two Things would disconnect each other;" + first);
                }
            }
        }
    }
    if (const auto* apps = find(*top, "apps")) {
        if (const auto items = sequence(apps->value, "apps", "apps: [{name: sensors, match: {unit: sensor.service}, publish: [...]}]")) {
            for (std::size_t i = 0; i < items->size(); ++i) {
                c.apps.push_back(parse_app((*items)[i], "apps[" + std::to_string(i) + "]", c.things));
                const auto& b = c.apps.back();
                for (std::size_t j = 0; j < i; ++j) {
                    if (!b.name.empty() && c.apps[j].name == b.name) {
                        report(b.where, "apps[" + std::to_string(i) + "].name", "duplicate rule name '" + b.name + "'",
                               "rule names appear in denial messages and must be unique; first used by apps[" +
                                   std::to_string(j) + "] at line " + std::to_string(c.apps[j].where.line));
                        break;
                    }
                }
            }
        }
    }
    const auto* ipc = find(*top, "ipc");
    if (ipc != nullptr) parse_ipc(ipc->value, c.ipc);
    const auto* mqtt = find(*top, "mqtt");
    parse_mqtt(mqtt != nullptr ? mqtt->value : YAML::Node{}, ipc != nullptr ? ipc->value : YAML::Node{}, c);
    if (const auto* f = find(*top, "spool")) parse_spool(f->value, c.spool);
    if (const auto* f = find(*top, "log")) parse_log(f->value, c.log);
    const auto* metrics = find(*top, "metrics");
    parse_metrics(*this, metrics != nullptr ? metrics->value : YAML::Node{}, c);
    if (const auto* f = find(*top, "tpm2_tcti")) {
        if (auto v = string(f->value, "tpm2_tcti")) {
            if (v->empty() || v->size() > 1024 || v->find('\0') != std::string::npos)
                error(f->value, "tpm2_tcti", "is not a TCTI", "e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321");
            else
                c.tpm2_tcti = *v;
        }
    }
    return c;
}

}  // namespace detail

namespace {

using detail::parser;

// Records where the first event of a document is.
class first_mark final : public YAML::EventHandler {
public:
    std::optional<source_location> at;
    void OnDocumentStart(const YAML::Mark& m) override { set(m); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { set(m); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { set(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { set(m); }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override { set(m); }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override { set(m); }
    void OnMapEnd() override {}

private:
    void set(const YAML::Mark& m) {
        if (!at && !m.is_null()) at = source_location{m.line + 1, m.column + 1};
    }
};

// Where a second YAML document starts, if there is one. May throw YAML::Exception.
std::optional<source_location> second_document(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    first_mark first;
    if (!parser.HandleNextDocument(first)) return std::nullopt;
    first_mark second;
    if (!parser.HandleNextDocument(second)) return std::nullopt;
    return second.at.value_or(source_location{});
}

// YAML text must be Unicode without C0 control characters other than TAB, LF and CR. yaml-cpp
// does not enforce this and misbehaves on some of them (a NUL or 0x04 can make LoadAll produce
// documents forever), so bad bytes are refused before it sees them. Returns the position of the
// first bad byte and what it is.
std::optional<std::pair<source_location, std::string>> bad_character(std::string_view text) {
    int line = 1;
    std::size_t line_start = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto here = [&] { return source_location{line, static_cast<int>(i - line_start) + 1}; };
        if (c == '\n') {
            ++line;
            line_start = ++i;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\r') {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(c));
            return std::pair{here(), std::string("control character ") + hex};
        }
        if (c == 0x7F) return std::pair{here(), std::string("control character 0x7F")};
        std::size_t len = 1;
        if (c >= 0x80) {
            std::uint32_t cp = 0;
            len = text::decode_utf8(text.substr(i), cp);
            if (len == 0) return std::pair{here(), std::string("a byte that is not valid UTF-8")};
        }
        i += len;
    }
    return std::nullopt;
}

}  // namespace

load_result parse(std::string_view yaml_text, std::string file_name) {
    parser p(std::move(file_name));
    configuration c;
    if (const auto bad = bad_character(yaml_text)) {
        p.report(bad->first, "", "the file contains " + bad->second, "a configuration file is UTF-8 text; is this the right file?");
    } else {
        try {
            const std::string text(yaml_text);
            // Not YAML::LoadAll: on some malformed input it produces empty documents forever
            // (yaml-cpp 0.7, found by fuzz_config_load). Load() reads the first document; a
            // second one is detected by asking the parser for at most two documents.
            const auto root = YAML::Load(text);
            if (const auto second = second_document(text)) {
                p.report(*second, "", "the file holds more than one YAML document", "remove the '---' separator and what follows");
            }
            c = p.parse_root(root);
        } catch (const YAML::Exception& e) {
            const auto at = e.mark.is_null() ? source_location{} : source_location{e.mark.line + 1, e.mark.column + 1};
            p.report(at, "", "YAML syntax error: " + e.msg, "check the indentation and quoting around this position");
        }
    }
    load_result r;
    std::stable_sort(p.diagnostics.begin(), p.diagnostics.end(), [](const diagnostic& a, const diagnostic& b) {
        return std::pair{a.line, a.column} < std::pair{b.line, b.column};
    });
    r.diagnostics = std::move(p.diagnostics);
    if (std::none_of(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& d) { return !d.warning; })) {
        r.config = std::move(c);
    } else {
        r.partial = std::move(c);
    }
    return r;
}

}  // namespace thingmux::config

#include "config/parser.hpp"

#include <algorithm>

namespace thingmux::config::detail {

source_location location_of(const YAML::Node& n) {
    const auto m = n.Mark();
    if (m.is_null() || m.line < 0 || m.column < 0) return {};
    return {m.line + 1, m.column + 1};
}

std::string kind_of(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: {
        auto s = n.Scalar();
        if (s.size() > 40) s = s.substr(0, 37) + "...";
        return "'" + s + "'";
    }
    default: return "nothing";
    }
}

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (const auto w : words) out += (out.empty() ? "" : ", ") + std::string(w);
    return out;
}
const field* find(const fields& f, std::string_view key) {
    for (const auto& [k, v] : f) {
        if (k == key) return &v;
    }
    return nullptr;
}

void parser::report(source_location at, std::string path, std::string message, std::string hint, bool warning) {
    diagnostics.push_back(diagnostic{file_, at.line, at.column, std::move(path), std::move(message), std::move(hint), warning});
}

void parser::error(const YAML::Node& at, std::string path, std::string message, std::string hint) {
    report(location_of(at), std::move(path), std::move(message), std::move(hint));
}

void parser::warn(const YAML::Node& at, std::string path, std::string message, std::string hint) {
    report(location_of(at), std::move(path), std::move(message), std::move(hint), true);
}

bool parser::has_errors() const {
    return std::any_of(diagnostics.begin(), diagnostics.end(), [](const diagnostic& d) { return !d.warning; });
}

std::optional<fields> parser::mapping(const YAML::Node& node, const std::string& path, std::span<const std::string_view> known) {
    if (node.IsNull()) return fields{};
    if (!node.IsMap()) {
        error(node, path, "expected a mapping (key: value lines), got " + kind_of(node));
        return std::nullopt;
    }
    fields out;
    for (auto it = node.begin(); it != node.end(); ++it) {
        const YAML::Node key = it->first;
        const std::string sub = path.empty() ? "" : path + ".";
        if (!key.IsScalar()) {
            error(key, path, "a key must be a plain name, got " + kind_of(key));
            continue;
        }
        const auto& name = key.Scalar();
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            const auto suggestion = closest(name, known);
            error(key, sub + name, "unknown key '" + name + "'",
                  suggestion.empty() ? "known keys here: " + join(known) : "did you mean '" + suggestion + "'?");
            continue;
        }
        if (const auto* first = find(out, name)) {
            error(key, sub + name, "key '" + name + "' is given twice",
                  "the first one is at line " + std::to_string(location_of(first->key).line));
            continue;
        }
        out.emplace_back(name, field{key, it->second});
    }
    return out;
}

std::optional<std::vector<YAML::Node>> parser::sequence(const YAML::Node& node, const std::string& path, std::string_view example) {
    if (node.IsNull()) return std::vector<YAML::Node>{};
    if (!node.IsSequence()) {
        error(node, path, "expected a list, got " + kind_of(node), "write e.g. " + std::string(example));
        return std::nullopt;
    }
    std::vector<YAML::Node> out;
    for (auto it = node.begin(); it != node.end(); ++it) out.push_back(*it);
    return out;
}

std::optional<std::string> parser::scalar(const YAML::Node& node, const std::string& path, std::string_view what) {
    if (!node.IsScalar()) {
        error(node, path, "expected " + std::string(what) + ", got " + kind_of(node));
        return std::nullopt;
    }
    return node.Scalar();
}

std::optional<std::string> parser::string(const YAML::Node& node, const std::string& path, bool allow_empty) {
    auto s = scalar(node, path, "a string");
    if (s && s->empty() && !allow_empty) {
        error(node, path, "must not be empty");
        return std::nullopt;
    }
    if (s && s->find('\0') != std::string::npos) {
        error(node, path, "must not contain a NUL character");
        return std::nullopt;
    }
    return s;
}

std::optional<std::uint64_t> parser::integer(const YAML::Node& node, const std::string& path, std::uint64_t min, std::uint64_t max) {
    const auto s = scalar(node, path, "a whole number");
    if (!s) return std::nullopt;
    const auto range = std::to_string(min) + ".." + std::to_string(max);
    const auto v = parse_uint(*s);
    if (!v) {
        if (!s->empty() && s->front() == '-' && parse_uint(s->substr(1))) {
            error(node, path, "out of range: " + *s, "allowed: " + range);
        } else {
            error(node, path, "expected a whole number, got " + kind_of(node), "allowed: " + range);
        }
        return std::nullopt;
    }
    if (*v < min || *v > max) {
        error(node, path, "out of range: " + *s, "allowed: " + range);
        return std::nullopt;
    }
    return v;
}

std::optional<std::optional<std::uint64_t>> parser::size(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                std::uint64_t max, bool allow_unlimited) {
    const auto s = scalar(node, path, "a size");
    if (!s) return std::nullopt;
    if (*s == "unlimited") {
        if (allow_unlimited) return std::optional<std::uint64_t>{};
        error(node, path, "'unlimited' is not allowed here", "every client-controlled resource needs a limit");
        return std::nullopt;
    }
    const auto v = parse_size(*s);
    if (!v.value) {
        error(node, path, "invalid size: " + v.problem, v.hint);
        return std::nullopt;
    }
    if (*v.value < min || *v.value > max) {
        error(node, path, "out of range: " + *s, "allowed: " + std::to_string(min) + ".." + std::to_string(max) + " bytes" +
                                                      (allow_unlimited ? " or \"unlimited\"" : ""));
        return std::nullopt;
    }
    return std::optional<std::uint64_t>{*v.value};
}

std::optional<std::optional<std::uint64_t>> parser::count(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                 std::uint64_t max, bool allow_unlimited) {
    if (node.IsScalar() && node.Scalar() == "unlimited") {
        if (allow_unlimited) return std::optional<std::uint64_t>{};
        error(node, path, "'unlimited' is not allowed here", "allowed: " + std::to_string(min) + ".." + std::to_string(max));
        return std::nullopt;
    }
    const auto v = integer(node, path, min, max);
    if (!v) {
        if (allow_unlimited && !diagnostics.empty()) diagnostics.back().hint += " or \"unlimited\"";
        return std::nullopt;
    }
    return std::optional<std::uint64_t>{*v};
}

std::optional<duration> parser::time(const YAML::Node& node, const std::string& path, duration min, duration max) {
    const auto s = scalar(node, path, "a duration");
    if (!s) return std::nullopt;
    const auto v = parse_duration(*s);
    if (!v.value) {
        error(node, path, "invalid duration: " + v.problem, v.hint);
        return std::nullopt;
    }
    if (*v.value < min || *v.value > max) {
        error(node, path, "out of range: " + *s, "allowed: " + describe(min) + ".." + describe(max));
        return std::nullopt;
    }
    return v.value;
}

std::string parser::describe(duration d) {
    const auto ms = d.count();
    if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
    if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
}

std::optional<std::chrono::seconds> parser::whole_seconds(const YAML::Node& node, const std::string& path, std::chrono::seconds max) {
    const auto v = time(node, path, duration{0}, max);
    if (!v) return std::nullopt;
    if (v->count() % 1000 != 0) {
        error(node, path, "must be whole seconds, got " + kind_of(node), "MQTT counts this in seconds");
        return std::nullopt;
    }
    return std::chrono::duration_cast<std::chrono::seconds>(*v);
}

std::optional<bool> parser::boolean(const YAML::Node& node, const std::string& path) {
    static constexpr std::array<choice<bool>, 2> choices{{{"true", true}, {"false", false}}};
    return enumeration(node, path, choices);
}

std::optional<std::filesystem::path> parser::socket_path(const YAML::Node& node, const std::string& path) {
    auto v = absolute_path(node, path);
    if (v && v->native().size() >= max_socket_path) {
        error(node, path, "is " + std::to_string(v->native().size()) + " bytes long",
              "a Unix socket path must be shorter than 108 bytes");
        return std::nullopt;
    }
    return v;
}

std::optional<unsigned> parser::file_mode(const YAML::Node& node, const std::string& path) {
    const auto v = scalar(node, path, "an octal mode");
    if (!v) return std::nullopt;
    const bool octal =
        !v->empty() && v->size() <= 5 && std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '7'; });
    unsigned mode = 0;
    for (const char c : *v) mode = mode * 8 + static_cast<unsigned>(c - '0');
    if (!octal || mode > 07777) {
        error(node, path, "'" + *v + "' is not an octal file mode", "write it quoted, e.g. mode: \"0660\"");
        return std::nullopt;
    }
    if ((mode & 0600U) != 0600U)
        warn(node, path, "the owner cannot read and write the socket", "the usual mode is \"0660\"");
    return mode;
}

void parser::socket_access(const fields& f, const std::string& section, unsigned& mode, std::string& group) {
    if (const auto* x = find(f, "mode")) {
        if (auto v = file_mode(x->value, section + ".mode")) mode = *v;
    }
    if (const auto* x = find(f, "group")) {
        if (auto v = string(x->value, section + ".group", true)) group = *v;
    }
}

std::optional<std::string> parser::thing_name(const YAML::Node& node, const std::string& path,
                                              const std::vector<thing>& things) {
    auto s = string(node, path);
    if (!s) return std::nullopt;
    if (std::any_of(things.begin(), things.end(), [&](const thing& t) { return t.name == *s; })) return s;
    std::vector<std::string_view> names;
    for (const auto& t : things) names.push_back(t.name);
    const auto suggestion = closest(*s, names);
    error(node, path, "no Thing named '" + *s + "'",
          suggestion.empty() ? "name one of the Things under things:" : "did you mean '" + suggestion + "'?");
    return std::nullopt;
}

std::optional<std::filesystem::path> parser::absolute_path(const YAML::Node& node, const std::string& path) {
    const auto s = string(node, path);
    if (!s) return std::nullopt;
    if (s->front() != '/') {
        error(node, path, "'" + *s + "' is not an absolute path", "write the full path, starting with '/'");
        return std::nullopt;
    }
    return std::filesystem::path(*s);
}

std::optional<std::filesystem::path> parser::file_or_credential(const YAML::Node& node, const std::string& path) {
    // A systemd credential (LoadCredential= in the unit): read from $CREDENTIALS_DIRECTORY.
    const auto s = node.IsScalar() ? node.Scalar() : std::string{};
    if (!s.starts_with(credential_prefix)) return absolute_path(node, path);
    const auto name = s.substr(credential_prefix.size());
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        error(node, path, "'" + s + "' does not name a credential", "write credential:NAME, NAME as in LoadCredential=NAME:...");
        return std::nullopt;
    }
    return std::filesystem::path(s);
}

std::optional<std::filesystem::path> parser::secret_file(const YAML::Node& node, const std::string& path,
                                                        std::string_view what) {
    if (node.IsScalar() && !node.Scalar().starts_with('/') && !node.Scalar().starts_with(credential_prefix)) {
        error(node, path, "names neither a file nor a systemd credential (the value is not shown: it may be a secret)",
              "put " + std::string(what) + " in a file only thingmuxd may read and write its absolute path, or "
              "credential:NAME for a systemd credential; never the secret itself");
        return std::nullopt;
    }
    return file_or_credential(node, path);
}

std::vector<std::string> parser::string_list(const YAML::Node& node, const std::string& path, std::string_view example) {
    std::vector<std::string> out;
    const auto items = sequence(node, path, example);
    if (!items) return out;
    for (std::size_t i = 0; i < items->size(); ++i) {
        if (auto s = string((*items)[i], path + "[" + std::to_string(i) + "]")) out.push_back(std::move(*s));
    }
    return out;
}

}  // namespace thingmux::config::detail

// OpenSSL 3 deprecates the ENGINE API in favour of providers, but Debian 12 ships PKCS#11 support
// only as libp11's engine. This file is the one place that uses it (see pkcs11_key.hpp), so the
// deprecation warnings are silenced here only.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "daemon/uplink/pkcs11_key.hpp"

#include <openssl/crypto.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/ui.h>

#include <algorithm>
#include <array>
#include <map>
#include <vector>

namespace thingmux::uplink {
namespace {

constexpr const char* engine_id = "pkcs11";

// One engine per PKCS#11 library, initialised once and kept for the process's life: the library
// is loaded once (C_Initialize may not be called twice), and the keys it gave keep referring to
// it. Deliberately never freed: OpenSSL's own exit handler tears engines down.
ENGINE* engine_for(const std::string& module, std::string& error) {
    static std::map<std::string, ENGINE*, std::less<>> engines;
    if (auto it = engines.find(module); it != engines.end()) return it->second;
    ENGINE_load_dynamic();
    ENGINE* e = ENGINE_by_id(engine_id);
    if (e == nullptr) {
        error = "cannot load OpenSSL's pkcs11 engine (install libengine-pkcs11-openssl): " + openssl_errors();
        return nullptr;
    }
    if (ENGINE_ctrl_cmd_string(e, "MODULE_PATH", module.c_str(), 0) != 1 || ENGINE_init(e) != 1) {
        error = "cannot load the PKCS#11 library " + module + ": " + openssl_errors();
        ENGINE_free(e);
        return nullptr;
    }
    ENGINE_free(e);  // the functional reference of ENGINE_init keeps it
    engines.emplace(module, e);
    return e;
}

// Digests of {library, object, PIN} the token refused: never offered again (see the header).
std::vector<std::array<unsigned char, 32>>& refused_pins() {
    static std::vector<std::array<unsigned char, 32>> refused;
    return refused;
}

std::array<unsigned char, 32> pin_digest(const pkcs11::uri& uri, const std::string& pin) {
    std::string material = uri.module_path + '\n' + uri.path_uri() + '\n' + pin;
    std::array<unsigned char, 32> d{};
    unsigned int n = 0;
    (void)EVP_Digest(material.data(), material.size(), d.data(), &n, EVP_sha256(), nullptr);
    OPENSSL_cleanse(material.data(), material.size());
    return d;
}

bool pin_problem(const std::string& errors) {
    return errors.find("PIN") != std::string::npos;  // PIN incorrect, invalid, expired, locked, len range
}

// Gets the engine ready to load `uri` with `pin`; empty on success, else what is wrong.
std::string prepare(ENGINE*& e, const pkcs11::uri& uri, const std::string& pin) {
    if (uri.module_path.empty())
        return "PKCS#11 URI " + uri.describe() +
               " has no module-path: add ?module-path=/path/of/the/token/library.so (e.g. "
               "/usr/lib/softhsm/libsofthsm2.so)";
    if (!pin.empty()) {
        const auto d = pin_digest(uri, pin);
        const auto& refused = refused_pins();
        if (std::find(refused.begin(), refused.end(), d) != refused.end())
            return "the token refused this PIN for " + uri.describe() +
                   " before; not trying it again (tokens lock after a few wrong PINs): fix the PIN";
    }
    std::string error;
    e = engine_for(uri.module_path, error);
    if (e == nullptr) return error;
    ERR_clear_error();
    // Set even when empty, so that no earlier Thing's PIN is offered to this token.
    if (ENGINE_ctrl_cmd_string(e, "PIN", pin.c_str(), 0) != 1) return "cannot pass the PIN to the pkcs11 engine: " + openssl_errors();
    return {};
}

// What went wrong loading `what` from `uri`, with what to do.
std::string failure(const pkcs11::uri& uri, const std::string& pin, const char* what) {
    const auto errors = openssl_errors();
    if (pin_problem(errors)) {
        if (!pin.empty()) refused_pins().push_back(pin_digest(uri, pin));
        return "the token refused the PIN for " + uri.describe() + " (" + errors + "): fix key_pin / pin-source";
    }
    std::string hint = "check token= and object= / id= (pkcs11-tool --module " + uri.module_path + " --list-objects";
    hint += pin.empty() ? ") and give the PIN (key_pin:, pin-source or pin-value): a private object is found only after login"
                        : " --login)";
    return std::string("cannot load the ") + what + " " + uri.describe() + " from the token: " + errors + "; " + hint;
}

}  // namespace

token_object load_token_key(const pkcs11::uri& uri, const std::string& pin) {
    ENGINE* e = nullptr;
    if (auto problem = prepare(e, uri, pin); !problem.empty()) return {nullptr, nullptr, std::move(problem)};
    // The engine is given only the path attributes: libp11 prints the URI it cannot find, and the
    // query could hold the PIN. UI_null(): never prompt on a terminal.
    const auto path = uri.path_uri();
    // OpenSSL declares UI_null() const but takes a mutable UI_METHOD; it never changes it.
    evp_pkey_ptr key{ENGINE_load_private_key(e, path.c_str(), const_cast<UI_METHOD*>(UI_null()), nullptr)};
    std::string problem = key ? std::string() : failure(uri, pin, "private key");
    (void)ENGINE_ctrl_cmd_string(e, "PIN", "", 0);  // libp11 wipes the PIN it held
    ERR_clear_error();
    return {std::move(key), nullptr, std::move(problem)};
}

token_object load_token_certificate(const pkcs11::uri& uri, const std::string& pin) {
    ENGINE* e = nullptr;
    if (auto problem = prepare(e, uri, pin); !problem.empty()) return {nullptr, nullptr, std::move(problem)};
    const auto path = uri.path_uri();
    struct {
        const char* id;
        X509* cert;
    } params{path.c_str(), nullptr};
    std::string problem;
    if (ENGINE_ctrl_cmd(e, "LOAD_CERT_CTRL", 0, &params, nullptr, 1) != 1 || params.cert == nullptr)
        problem = failure(uri, pin, "certificate");
    (void)ENGINE_ctrl_cmd_string(e, "PIN", "", 0);
    ERR_clear_error();
    return {nullptr, x509_ptr{params.cert}, std::move(problem)};
}

}  // namespace thingmux::uplink

// libFuzzer target for AWS IoT fleet provisioning's codec (common/fleet_provisioning.hpp).
//
// Input: one selector byte, then a payload (or a name).
//   selector 0-79:    the payload as CreateCertificateFromCsr's accepted answer
//   selector 80-159:  the payload as RegisterThing's accepted answer
//   selector 160-239: the payload as a rejected answer
//   selector 240-255: the rest as a template name, a CSR and a token to encode
// Besides the sanitizers' findings, the target aborts when a property of the codec breaks:
//   - a reader gives a value or an error, and an error's detail never holds a control character;
//   - what it accepts stays within the limits (ids, PEM, token, Thing name, device configuration);
//   - a token it accepts can be sent back in a RegisterThing request;
//   - a template name it accepts makes topics with no MQTT wildcard or separator beyond AWS's;
//   - it is deterministic.
// Seeds: tests/fuzz/corpus/fleet_provisioning/.
#include "common/fleet_provisioning.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace thingmux::aws::fleet_provisioning;

void require(bool condition) {
    if (!condition) std::abort();
}

template <class T>
void check_error(const result<T>& r) {
    if (r) return;
    const auto detail = r.error().detail;  // error() returns a copy: take one
    require(!detail.empty());
    require(std::none_of(detail.begin(), detail.end(),
                         [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == '\x7f'; }));
}

void check_created(std::string_view payload) {
    const auto r = decode_create_certificate_accepted(payload);
    check_error(r);
    if (r) {
        require(payload.size() <= max_payload_bytes);
        require(!r->certificate_id.empty() && r->certificate_id.size() <= max_certificate_id_bytes);
        require(r->certificate_pem.size() <= max_certificate_pem_bytes);
        require(encode_register_thing_request(r->ownership_token, {}).has_value());
    }
    require(decode_create_certificate_accepted(payload).has_value() == r.has_value());
}

void check_registered(std::string_view payload) {
    const auto r = decode_register_thing_accepted(payload);
    check_error(r);
    if (r) {
        require(!r->thing_name.empty() && r->thing_name.size() <= 128);
        require(r->device_configuration.size() <= max_device_configuration_entries);
    }
    require(decode_register_thing_accepted(payload).has_value() == r.has_value());
}

void check_rejected(std::string_view payload) {
    const auto r = decode_rejected(payload);
    check_error(r);
    if (r) {
        require(r->status_code == 0 || (r->status_code >= 100 && r->status_code <= 599));
        require(r->error_code.size() <= max_error_text_bytes && r->error_message.size() <= max_error_text_bytes);
    }
}

void check_requests(std::string_view text) {
    if (valid_template_name(text)) {
        const auto t = register_thing_topics(text);
        require(t.request.find_first_of("#+") == std::string::npos);
        require(std::count(t.request.begin(), t.request.end(), '/') == 4);
    }
    check_error(encode_create_certificate_request(text));
    check_error(encode_register_thing_request(text, {{std::string(text.substr(0, 8)), std::string(text)}}));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
    if (data[0] < 80) {
        check_created(rest);
    } else if (data[0] < 160) {
        check_registered(rest);
    } else if (data[0] < 240) {
        check_rejected(rest);
    } else {
        check_requests(rest);
    }
    return 0;
}

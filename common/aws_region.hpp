// The AWS region a SigV4 signature is scoped to: written in the configuration (region:) or read
// from the endpoint's name, as AWS IoT Core's endpoints carry it
// (PREFIX-ats.iot.REGION.amazonaws.com, PREFIX.credentials.iot.REGION.amazonaws.com.cn,
// data.iot-fips.REGION.amazonaws.com). Shared by config (which refuses auth: sigv4 when neither
// gives one) and the signer. Pure.
#pragma once

#include <string>
#include <string_view>

namespace thingmux::aws {

// Whether `region` can be a region name: 1 to 32 characters of a-z, 0-9 and '-', starting with a
// letter ("eu-west-1", "cn-north-1", "us-gov-west-1").
[[nodiscard]] bool valid_region(std::string_view region) noexcept;

// The region named in an AWS IoT endpoint: the label after "iot" (or "iot-fips") when the name
// ends in .amazonaws.com or .amazonaws.com.cn (case-insensitive); empty when it names none.
[[nodiscard]] std::string region_from_endpoint(std::string_view host);

}  // namespace thingmux::aws

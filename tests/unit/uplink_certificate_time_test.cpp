// A certificate's dates against the system clock: the classification (transient, its own
// conditions) and the words (naming the clock), for our certificate as it is loaded (a real
// certificate made here, valid only in the future or only in the past) and for the broker's as
// OpenSSL's verification reports it.
#include "common/utc_time.hpp"
#include "daemon/uplink/certificate_dates.hpp"
#include "daemon/uplink/certificate_time.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

namespace thingmux::uplink {
namespace {

using namespace std::chrono_literals;

wall_time at(int year, unsigned month, unsigned day, int hour = 0, int minute = 0) {
    const std::chrono::sys_days d = std::chrono::year(year) / std::chrono::month(month) / std::chrono::day(day);
    return wall_time(d) + std::chrono::hours(hour) + std::chrono::minutes(minute);
}

TEST(CertificateTime, ValidityAtBothEndsAndOutside) {
    const auto from = at(2027, 1, 1);
    const auto until = at(2028, 1, 1);
    EXPECT_EQ(validity_at(from, until, at(2026, 12, 31, 23, 59)), validity::not_yet_valid);
    EXPECT_EQ(validity_at(from, until, from), validity::valid);
    EXPECT_EQ(validity_at(from, until, at(2027, 6, 1)), validity::valid);
    EXPECT_EQ(validity_at(from, until, until), validity::valid);
    EXPECT_EQ(validity_at(from, until, until + 1s), validity::expired);
    EXPECT_EQ(validity_at(from, until, wall_time{}), validity::not_yet_valid) << "a clock at 1970, no RTC";
}

TEST(CertificateTime, MessagesNameTheClockAndBothTimes) {
    const auto not_yet = clock_problem("server certificate for broker.example", validity::not_yet_valid,
                                       at(2027, 1, 1), at(2028, 1, 1), at(2025, 3, 1, 12, 5));
    EXPECT_EQ(not_yet.find("server certificate for broker.example is not valid until 2027-01-01 00:00 UTC but the "
                           "system clock says 2025-03-01 12:05 UTC: is the clock set?"),
              0U)
        << not_yet;
    EXPECT_NE(not_yet.find("time sync"), std::string::npos) << not_yet;
    const auto expired = clock_problem("client certificate file /etc/x.pem", validity::expired, at(2020, 1, 1),
                                       at(2021, 1, 1, 8, 30), at(2031, 2, 3, 4, 5));
    EXPECT_EQ(expired.find("client certificate file /etc/x.pem expired on 2021-01-01 08:30 UTC but the system clock "
                           "says 2031-02-03 04:05 UTC: is the clock set?"),
              0U)
        << expired;
    EXPECT_NE(expired.find("renewed"), std::string::npos) << "the other cause, once the clock is right: " << expired;
}

TEST(CertificateTime, ClockConditionsAreTransientAndTheirOwn) {
    for (const auto e : {errc::server_certificate_not_yet_valid, errc::server_certificate_expired,
                         errc::client_certificate_not_yet_valid, errc::client_certificate_expired}) {
        const std::error_code ec = e;
        EXPECT_FALSE(is_fatal(ec)) << ec.message();
        EXPECT_TRUE(is_clock_problem(ec)) << ec.message();
        EXPECT_NE(ec.message().find("clock"), std::string::npos) << ec.message();
    }
    for (const auto e : {errc::server_certificate_untrusted, errc::client_certificate_rejected,
                         errc::credentials_unusable}) {
        EXPECT_TRUE(is_fatal(e));
        EXPECT_FALSE(is_clock_problem(e));
    }
    EXPECT_FALSE(is_clock_problem(errc::closed_by_broker));
}

TEST(CertificateTime, ServerVerificationResultsAreClassified) {
    EXPECT_EQ(server_verify_error(X509_V_ERR_CERT_NOT_YET_VALID), make_error_code(errc::server_certificate_not_yet_valid));
    EXPECT_EQ(server_verify_error(X509_V_ERR_CERT_HAS_EXPIRED), make_error_code(errc::server_certificate_expired));
    EXPECT_EQ(server_verify_error(X509_V_ERR_HOSTNAME_MISMATCH), make_error_code(errc::server_name_mismatch));
    EXPECT_EQ(server_verify_error(X509_V_ERR_IP_ADDRESS_MISMATCH), make_error_code(errc::server_name_mismatch));
    EXPECT_EQ(server_verify_error(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
              make_error_code(errc::server_certificate_untrusted));
    EXPECT_EQ(server_verify_error(X509_V_ERR_CERT_SIGNATURE_FAILURE), make_error_code(errc::server_certificate_untrusted));
}

// A self-signed EC certificate, valid from now + `from` to now + `until` or between two given
// dates, and its key, as PEM files.
struct certificate_files {
    std::filesystem::path dir;
    std::filesystem::path cert;
    std::filesystem::path key;
    certificate_files(const certificate_files&) = delete;
    certificate_files& operator=(const certificate_files&) = delete;

    certificate_files(std::chrono::seconds from, std::chrono::seconds until) {
        make([&](X509* x) {
            X509_gmtime_adj(X509_getm_notBefore(x), static_cast<long>(from.count()));
            X509_gmtime_adj(X509_getm_notAfter(x), static_cast<long>(until.count()));
        });
    }
    // Dates as ASN.1 text, "20491231235959Z".
    certificate_files(const char* not_before, const char* not_after) {
        make([&](X509* x) {
            if (ASN1_TIME_set_string_X509(X509_getm_notBefore(x), not_before) != 1 ||
                ASN1_TIME_set_string_X509(X509_getm_notAfter(x), not_after) != 1)
                throw std::runtime_error("ASN1_TIME_set_string_X509");
        });
    }

  private:
    template <typename SetDates>
    void make(SetDates set_dates) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "thingmux-certtime-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
        dir = tmpl;
        cert = dir / "thing.crt";
        key = dir / "thing.key";
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_EC_gen("P-256"), EVP_PKEY_free);
        std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
        if (!pkey || !x) throw std::runtime_error("OpenSSL allocation");
        X509_set_version(x.get(), 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
        set_dates(x.get());
        X509_NAME* name = X509_get_subject_name(x.get());
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("gateway-01"), -1,
                                   -1, 0);
        X509_set_issuer_name(x.get(), name);
        X509_set_pubkey(x.get(), pkey.get());
        if (X509_sign(x.get(), pkey.get(), EVP_sha256()) == 0) throw std::runtime_error("X509_sign");
        FILE* f = std::fopen(cert.c_str(), "w");
        PEM_write_X509(f, x.get());
        std::fclose(f);
        f = std::fopen(key.c_str(), "w");
        PEM_write_PrivateKey(f, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
        std::fclose(f);
    }

  public:
    ~certificate_files() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

tls_settings settings_for(const certificate_files& files) {
    tls_settings s;
    s.ca_file = files.cert;
    s.cert_file = files.cert;
    s.key_file = files.key;
    return s;
}

TEST(CertificateTime, OurCertificateNotValidYetIsAClockProblemNamedAsSuch) {
    const certificate_files files(std::chrono::hours(24 * 400), std::chrono::hours(24 * 800));
    const auto r = make_tls_context(settings_for(files));
    ASSERT_EQ(r.context, nullptr);
    EXPECT_EQ(r.code, make_error_code(errc::client_certificate_not_yet_valid)) << r.error;
    EXPECT_FALSE(is_fatal(r.code));
    EXPECT_EQ(r.error.find("client certificate file " + files.cert.string() + " is not valid until "), 0U) << r.error;
    EXPECT_NE(r.error.find("but the system clock says " + utc_text(std::chrono::system_clock::now())),
              std::string::npos)
        << r.error;
}

TEST(CertificateTime, OurExpiredCertificateIsAClockProblemNamedAsSuch) {
    const certificate_files files(-std::chrono::hours(24 * 800), -std::chrono::hours(24 * 400));
    const auto r = make_tls_context(settings_for(files));
    ASSERT_EQ(r.context, nullptr);
    EXPECT_EQ(r.code, make_error_code(errc::client_certificate_expired)) << r.error;
    EXPECT_NE(r.error.find(" expired on "), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("is the clock set?"), std::string::npos) << r.error;
}

TEST(CertificateTime, OurValidCertificateLoads) {
    const certificate_files files(-std::chrono::hours(1), std::chrono::hours(24));
    const auto r = make_tls_context(settings_for(files));
    EXPECT_NE(r.context, nullptr) << r.error;
    EXPECT_FALSE(r.code) << r.code.message();
    const auto dates = dates_of(SSL_CTX_get0_certificate(r.context->native_handle()));
    ASSERT_TRUE(dates);
    EXPECT_LT(dates->not_before, std::chrono::system_clock::now());
    EXPECT_GT(dates->not_after, std::chrono::system_clock::now() + std::chrono::hours(23));
}

// AWS IoT Core's device certificates are valid until 2049-12-31 23:59:59 UTC, past the end of a
// 32-bit time_t (January 2038), which Debian 12's armhf has: the dates must not go through it.
TEST(CertificateTime, DatesPast2038AreReadOnEveryArchitecture) {
    const certificate_files files("20200101000000Z", "20491231235959Z");
    const auto r = make_tls_context(settings_for(files));
    ASSERT_NE(r.context, nullptr) << r.error;
    const auto dates = dates_of(SSL_CTX_get0_certificate(r.context->native_handle()));
    ASSERT_TRUE(dates) << "the dates of a certificate valid until 2049 were not read";
    EXPECT_EQ(dates->not_before, at(2020, 1, 1));
    EXPECT_EQ(dates->not_after, at(2049, 12, 31, 23, 59) + 59s);
    EXPECT_EQ(validity_at(dates->not_before, dates->not_after, std::chrono::system_clock::now()), validity::valid);
    EXPECT_EQ(utc_text(dates->not_after), "2049-12-31 23:59 UTC");
}

}  // namespace
}  // namespace thingmux::uplink

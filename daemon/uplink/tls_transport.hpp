// MQTT's byte stream over TLS: our own small TLS client stream over a lower transport (TCP).
//
// The SSL object and its two memory BIOs are ours, not hidden in a stream class: ciphertext the
// lower transport read goes into the input BIO, what OpenSSL writes goes out of the output BIO.
// That is what lets one read hand over every TLS record one socket read brought. A broker sends
// each PUBACK in a record of its own and OpenSSL decrypts one record per SSL_read; decrypting a
// read's worth of records per event-loop turn (not one per turn) is what makes the results of a
// batch of publishes leave for the apps in one write (docs/performance.md).
#pragma once

#include "daemon/uplink/certificate_dates.hpp"
#include "daemon/uplink/transport.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::uplink {

class tls_transport final : public transport, public std::enable_shared_from_this<tls_transport> {
public:
    // A transport, or errc::tls_setup_failed with a message when SNI, host name verification or
    // ALPN for `host` cannot be set up.
    [[nodiscard]] static transport_result create(boost::asio::io_context& io, std::shared_ptr<transport> lower,
                                                 std::shared_ptr<boost::asio::ssl::context> context,
                                                 const std::string& host, const tls_settings& settings);
    ~tls_transport() override;
    tls_transport(const tls_transport&) = delete;
    tls_transport& operator=(const tls_transport&) = delete;

    void async_open(const std::string& host, std::uint16_t port, open_handler done) override;
    void async_read_some(boost::asio::mutable_buffer buffer, io_handler done) override;
    void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler done) override;
    void close() override;
    // Names the certificate or file a TLS failure is about: "server certificate for HOST not
    // trusted by CA file …", "broker rejected our client certificate …: … alert …".
    [[nodiscard]] std::string describe(const std::error_code& ec) const override;

private:
    tls_transport(boost::asio::io_context& io, std::shared_ptr<transport> lower,
                  std::shared_ptr<boost::asio::ssl::context> context,
                  const std::string& host, const tls_settings& settings);

    // Opening: the lower transport's open, then handshake steps until OpenSSL is done.
    void on_lower_open(std::error_code ec, open_step step);
    void handshake_step();
    void finish_open(std::error_code ec);

    // Ciphertext in: one lower read at a time, for the handshake or for a pending read.
    void read_ciphertext();
    void on_ciphertext(std::error_code ec, std::size_t n);
    // Decrypts into `buffer` until it is full or no complete record is left; an error after
    // some bytes is kept for the next read.
    std::size_t decrypt(boost::asio::mutable_buffer buffer);
    void complete_read(std::size_t n);

    // Plaintext in: up to write_chunk bytes of the caller's write into the output BIO; true when
    // there is ciphertext to send.
    bool encrypt_some();
    // Ciphertext out: whatever OpenSSL wrote to the output BIO, one lower write at a time.
    void send_ciphertext();
    void on_ciphertext_sent(std::error_code ec);

    // The error for a failed SSL call, classified for the uplink (server certificate not trusted
    // or for another name, client certificate rejected) or OpenSSL's own.
    std::error_code ssl_failure(int ssl_error);
    // OpenSSL's verify callback: keeps verification as it is and records the first certificate of
    // the broker's chain whose dates failed, which the verify result alone does not name.
    static int on_verify(int preverify_ok, X509_STORE_CTX* store);

    boost::asio::io_context& io_;
    std::shared_ptr<transport> lower_;
    std::shared_ptr<boost::asio::ssl::context> context_;  // must outlive ssl_
    SSL* ssl_ = nullptr;
    BIO* ciphertext_in_ = nullptr;   // owned by ssl_
    BIO* ciphertext_out_ = nullptr;  // owned by ssl_
    std::string host_;
    tls_settings settings_;  // for messages: which CA file, which certificate

    open_handler open_done_;
    bool handshake_done_ = false;
    std::vector<std::uint8_t> in_ = std::vector<std::uint8_t>(32 * 1024);  // one lower read
    bool reading_ = false;                   // a lower read is in flight
    boost::asio::mutable_buffer read_buffer_;  // the caller's, while a read is pending
    io_handler read_done_;
    std::error_code read_error_;  // met after bytes that were delivered first
    static constexpr std::size_t write_chunk = 32 * 1024;  // plaintext encrypted per lower write
    std::vector<boost::asio::const_buffer> plain_;  // the caller's write, while it is not done
    std::size_t plain_index_ = 0;                   // the buffer of plain_ being encrypted
    std::size_t plain_offset_ = 0;                  // how far into it
    std::vector<std::uint8_t> out_;  // the ciphertext of the lower write in flight
    boost::asio::const_buffer out_buffer_;  // out_, as the lower write's buffer sequence
    bool sending_ = false;
    io_handler write_done_;
    std::size_t write_bytes_ = 0;
    std::error_code write_error_;
    unsigned long tls_error_ = 0;  // the OpenSSL error behind the last classified failure
    struct dates_failure {
        int depth = 0;        // 0: the broker's own certificate; more: a CA of its chain
        std::string subject;  // RFC 2253, from the broker: escaped where logged
        certificate_dates dates;
    };
    std::optional<dates_failure> dates_failure_;
    bool closed_ = false;
};

}  // namespace thingmux::uplink

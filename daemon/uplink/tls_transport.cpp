#include "daemon/uplink/tls_transport.hpp"

#include "daemon/uplink/error.hpp"

#include <boost/asio/post.hpp>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <chrono>

namespace thingmux::uplink {
namespace asio = boost::asio;

namespace {

// A message naming a certificate problem ("alert certificate expired", "alert unknown ca") is the
// broker refusing ours: with TLS 1.3 it arrives on the first read, after our handshake "succeeded".
bool is_alert(const std::string& what) { return what.find("alert") != std::string::npos; }
bool is_certificate_alert(const std::string& what) {
    return is_alert(what) &&
           (what.find("certificate") != std::string::npos || what.find("unknown ca") != std::string::npos);
}

}  // namespace

tls_transport::tls_transport(asio::io_context& io, std::shared_ptr<transport> lower,
                             std::shared_ptr<asio::ssl::context> context, const std::string& host,
                             const tls_settings& settings)
    : transport("tls", "TLS handshake with"),
      io_(io),
      lower_(std::move(lower)),
      context_(std::move(context)),
      host_(host),
      settings_(settings) {
    ssl_ = SSL_new(context_->native_handle());
    if (ssl_ == nullptr) return;
    ciphertext_in_ = BIO_new(BIO_s_mem());
    ciphertext_out_ = BIO_new(BIO_s_mem());
    if (ciphertext_in_ == nullptr || ciphertext_out_ == nullptr) {
        BIO_free(ciphertext_in_);
        BIO_free(ciphertext_out_);
        SSL_free(std::exchange(ssl_, nullptr));
        return;
    }
    // An empty input BIO means "wait for more" (SSL_ERROR_WANT_READ), not end of stream.
    BIO_ctrl(ciphertext_in_, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nullptr);
    SSL_set_bio(ssl_, ciphertext_in_, ciphertext_out_);
    SSL_set_connect_state(ssl_);
}

tls_transport::~tls_transport() {
    if (ssl_ != nullptr) SSL_free(ssl_);
}

transport_result tls_transport::create(asio::io_context& io, std::shared_ptr<transport> lower,
                                       std::shared_ptr<asio::ssl::context> context, const std::string& host,
                                       const tls_settings& settings) {
    std::shared_ptr<tls_transport> t(new tls_transport(io, std::move(lower), std::move(context), host, settings));
    if (t->ssl_ == nullptr) return {nullptr, errc::tls_setup_failed, "cannot create a TLS connection (out of memory)"};
    if (auto err = prepare_ssl(t->ssl_, host, settings.alpn); !err.empty())
        return {nullptr, errc::tls_setup_failed, std::move(err)};
    SSL_set_ex_data(t->ssl_, 0, t.get());  // for on_verify; the SSL object dies with the transport
    SSL_set_verify(t->ssl_, SSL_VERIFY_PEER, &tls_transport::on_verify);
    return {std::move(t), {}, {}};
}

// ---- opening ------------------------------------------------------------------------------

void tls_transport::async_open(const std::string& host, std::uint16_t port, open_handler done) {
    open_done_ = std::move(done);
    lower_->async_open(host, port, [self = shared_from_this()](std::error_code ec, open_step step) {
        self->on_lower_open(ec, step);
    });
}

void tls_transport::on_lower_open(std::error_code ec, open_step step) {
    if (ec) {
        if (auto done = std::exchange(open_done_, {})) done(ec, step);
        return;
    }
    handshake_step();
}

void tls_transport::handshake_step() {
    if (closed_) return finish_open(std::make_error_code(std::errc::operation_canceled));
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
        handshake_done_ = true;
    } else if (const int e = SSL_get_error(ssl_, r); e != SSL_ERROR_WANT_READ) {
        return finish_open(ssl_failure(e));
    }
    // What OpenSSL wrote (ClientHello, our certificate, Finished) goes out before we wait for
    // the broker's answer; on_ciphertext_sent continues here.
    if (BIO_ctrl_pending(ciphertext_out_) > 0) return send_ciphertext();
    if (handshake_done_) return finish_open({});
    read_ciphertext();
}

void tls_transport::finish_open(std::error_code ec) {
    if (open_done_) std::exchange(open_done_, {})(ec, open_step::handshake);
}

// ---- reading ------------------------------------------------------------------------------

void tls_transport::async_read_some(asio::mutable_buffer buffer, io_handler done) {
    read_buffer_ = buffer;
    read_done_ = std::move(done);
    // Records left over from the last lower read (the caller's buffer was full) come first.
    const std::size_t n = decrypt(buffer);
    if (n > 0 || read_error_) {
        asio::post(io_, [self = shared_from_this(), n] { self->complete_read(n); });
        return;
    }
    read_ciphertext();
}

void tls_transport::read_ciphertext() {
    if (reading_) return;
    reading_ = true;
    lower_->async_read_some(asio::buffer(in_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
        self->on_ciphertext(ec, n);
    });
}

void tls_transport::on_ciphertext(std::error_code ec, std::size_t n) {
    reading_ = false;
    // After close() the caller's read buffer may be gone with its owner: never decrypt into it.
    if (closed_) {
        read_buffer_ = {};
        if (!ec) ec = std::make_error_code(std::errc::operation_canceled);
        n = 0;
    }
    if (!ec && n > 0) BIO_write(ciphertext_in_, in_.data(), static_cast<int>(n));
    if (open_done_) {
        if (ec) return finish_open(ec);
        return handshake_step();
    }
    if (!read_done_) return;
    if (ec) {
        read_error_ = ec;
        return complete_read(0);
    }
    const std::size_t plain = decrypt(read_buffer_);
    // Reading may make OpenSSL answer (a key update): that goes out with the next lower write.
    if (!sending_ && BIO_ctrl_pending(ciphertext_out_) > 0) send_ciphertext();
    if (plain == 0 && !read_error_) return read_ciphertext();  // the rest of the record is on its way
    complete_read(plain);
}

std::size_t tls_transport::decrypt(asio::mutable_buffer buffer) {
    auto* data = static_cast<unsigned char*>(buffer.data());
    std::size_t filled = 0;
    // SSL_get_error() needs an empty error queue before the call it explains. A successful
    // SSL_read_ex() leaves it as it was, and the loop ends at the first failure, so one clearing
    // serves every record of this read: OpenSSL 3's ERR_clear_error() costs about as much as
    // decrypting a PUBACK's record, which the broker sends one per message.
    ERR_clear_error();
    while (filled < buffer.size() && !read_error_) {
        std::size_t n = 0;
        const int r = SSL_read_ex(ssl_, data + filled, buffer.size() - filled, &n);
        if (r == 1) {
            filled += n;
            continue;
        }
        const int e = SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ) break;  // no complete record left
        read_error_ = e == SSL_ERROR_ZERO_RETURN ? std::error_code(errc::closed_by_broker) : ssl_failure(e);
    }
    return filled;
}

void tls_transport::complete_read(std::size_t n) {
    auto done = std::exchange(read_done_, {});
    if (!done) return;
    // Bytes first; an error met after them is reported by the next read.
    if (n > 0) return done({}, n);
    done(read_error_, 0);
}

// ---- writing ------------------------------------------------------------------------------

void tls_transport::async_write(std::span<const asio::const_buffer> buffers, io_handler done) {
    plain_.assign(buffers.begin(), buffers.end());
    plain_index_ = 0;
    plain_offset_ = 0;
    write_done_ = std::move(done);
    write_bytes_ = 0;
    if (sending_) return;  // on_ciphertext_sent encrypts and sends this too
    if (!encrypt_some()) {
        asio::post(io_, [self = shared_from_this()] { self->on_ciphertext_sent({}); });
        return;
    }
    send_ciphertext();
}

bool tls_transport::encrypt_some() {
    // A bounded piece at a time: the ciphertext of a large write goes out while the rest is
    // encrypted, and the output BIO stays small enough to stay in the CPU's cache.
    std::size_t budget = write_chunk;
    while (!write_error_ && budget > 0 && plain_index_ < plain_.size()) {
        const auto& b = plain_[plain_index_];
        const std::size_t left = b.size() - plain_offset_;
        if (left == 0) {
            ++plain_index_;
            plain_offset_ = 0;
            continue;
        }
        ERR_clear_error();
        std::size_t n = 0;
        // Into the output BIO, which takes everything: a write is all of it or an error.
        if (const int r = SSL_write_ex(ssl_, static_cast<const unsigned char*>(b.data()) + plain_offset_,
                                       std::min(left, budget), &n);
            r != 1) {
            write_error_ = ssl_failure(SSL_get_error(ssl_, r));
            break;
        }
        plain_offset_ += n;
        write_bytes_ += n;
        budget -= n;
    }
    return !write_error_ && BIO_ctrl_pending(ciphertext_out_) > 0;
}

void tls_transport::send_ciphertext() {
    out_.resize(BIO_ctrl_pending(ciphertext_out_));
    const int n = BIO_read(ciphertext_out_, out_.data(), static_cast<int>(out_.size()));
    out_.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    out_buffer_ = asio::buffer(out_);
    sending_ = true;
    lower_->async_write(std::span(&out_buffer_, 1), [self = shared_from_this()](std::error_code ec, std::size_t) {
        self->on_ciphertext_sent(ec);
    });
}

void tls_transport::on_ciphertext_sent(std::error_code ec) {
    sending_ = false;
    if (ec && !write_error_) write_error_ = ec;
    // OpenSSL wrote more meanwhile (an answer to the broker), or more of the caller's write waits.
    if (!write_error_ && !closed_ && (BIO_ctrl_pending(ciphertext_out_) > 0 || encrypt_some())) return send_ciphertext();
    if (open_done_) {
        if (write_error_) return finish_open(write_error_);
        if (handshake_done_) return finish_open({});
        return read_ciphertext();
    }
    if (auto done = std::exchange(write_done_, {})) done(write_error_, write_error_ ? 0 : write_bytes_);
}

// ---- closing and errors -------------------------------------------------------------------

void tls_transport::close() {
    closed_ = true;
    lower_->close();
}

int tls_transport::on_verify(int preverify_ok, X509_STORE_CTX* store) {
    if (preverify_ok == 1) return 1;
    const int error = X509_STORE_CTX_get_error(store);
    if (error != X509_V_ERR_CERT_NOT_YET_VALID && error != X509_V_ERR_CERT_HAS_EXPIRED) return preverify_ok;
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl != nullptr ? static_cast<tls_transport*>(SSL_get_ex_data(ssl, 0)) : nullptr;
    if (self == nullptr || self->dates_failure_) return preverify_ok;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    const auto dates = dates_of(cert);
    if (!dates) return preverify_ok;
    // No exception may leave a C callback: the subject is best effort.
    try {
        dates_failure d{.depth = X509_STORE_CTX_get_error_depth(store), .subject = {}, .dates = *dates};
        if (BIO* bio = BIO_new(BIO_s_mem()); bio != nullptr) {
            if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
                char* text = nullptr;
                const long n = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &text);  // BIO_get_mem_data, without its cast
                if (n > 0 && text != nullptr) d.subject.assign(text, static_cast<std::size_t>(std::min(n, 256L)));
            }
            BIO_free(bio);
        }
        self->dates_failure_ = std::move(d);
    } catch (...) {
    }
    return preverify_ok;
}

std::error_code tls_transport::ssl_failure(int ssl_error) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK) return server_verify_error(verify);
    if (code == 0) {
        // Nothing in OpenSSL's queue: a failure below TLS that memory BIOs cannot have.
        return std::make_error_code(ssl_error == SSL_ERROR_SYSCALL ? std::errc::io_error : std::errc::protocol_error);
    }
    tls_error_ = code;
    if (is_certificate_alert(openssl_error(code).message())) return errc::client_certificate_rejected;
    return openssl_error(code);
}

std::string tls_transport::describe(const std::error_code& ec) const {
    if (ec == errc::server_name_mismatch) return "server certificate does not match host name " + host_;
    if ((ec == errc::server_certificate_not_yet_valid || ec == errc::server_certificate_expired) && dates_failure_) {
        const auto& d = *dates_failure_;
        const std::string what =
            d.depth == 0 ? "server certificate for " + host_
                         : "certificate '" + d.subject + "' in the chain of the server certificate for " + host_;
        return clock_problem(what,
                             ec == errc::server_certificate_not_yet_valid ? validity::not_yet_valid : validity::expired,
                             d.dates.not_before, d.dates.not_after, std::chrono::system_clock::now());
    }
    if (ec == errc::server_certificate_untrusted || ec == errc::server_certificate_not_yet_valid ||
        ec == errc::server_certificate_expired) {
        const auto trust = settings_.ca_file.empty() ? std::string("the system's CA store")
                                                     : "CA file " + settings_.ca_file.string();
        return "server certificate for " + host_ + " not trusted by " + trust + ": " +
               X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
    }
    if (ec == errc::client_certificate_rejected || (ec.category() == openssl_category() && is_alert(ec.message()))) {
        const auto alert = ec.category() == openssl_category() ? ec : openssl_error(tls_error_);
        return settings_.peer + " rejected our client certificate " + settings_.cert_file.string() + ": " + alert.message();
    }
    if (ec.category() == openssl_category()) return "TLS error with " + host_ + ": " + ec.message();
    if (ec == errc::closed_by_broker) return "TLS connection to " + host_ + " closed without close_notify";
    // Not ours: the transport below (an HTTP proxy's) knows what it meant.
    return lower_->describe(ec);
}

}  // namespace thingmux::uplink

// getsockopt(TCP_INFO) for Node: the kernel's own record of a TCP connection, which Node does not expose.
// Why an addon: no maintained npm package reads struct tcp_info (the `sockopt` package handles integers only),
// and the fields we need (how long data and the handshake's ACK have waited in the kernel) exist nowhere else.
//
//   tcpInfo(fd, out: Float64Array(7)) -> boolean   (false: not a TCP socket, getsockopt failed, or the
//                                                   kernel filled too little of the struct to hold the fields)
//   tcpInfoProbe() -> number   bytes of struct tcp_info the kernel fills for a TCP socket (-errno: no socket)
//   TCP_INFO_NEEDED: number    bytes tcpInfo needs filled (through tcpi_rtt)
//   sendQueue(fd) -> number    bytes the kernel holds for the socket that the peer has not acknowledged yet,
//                              sent or still waiting to be sent (ioctl SIOCOUTQ); -1 when it cannot say
// out = [lastDataRecvMs, lastAckRecvMs, rttUs, bytesReceived, unacked, sacked, state]
// On a LISTEN socket (state 10) Linux puts the accept queue in unacked (connections waiting for
// accept()) and sacked (its size: min(backlog, net.core.somaxconn)).
// Fills a caller-owned array so a call allocates nothing (it runs once per accepted connection).
#include <node_api.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <string.h>
#include <stddef.h>
#include <errno.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

// Every field read below but tcpi_bytes_received lies within the struct's first TCP_INFO_NEEDED bytes.
// getsockopt may fill fewer and still succeed: qemu-user's emulation copies only an int (4 bytes), so the
// rest would read as the zeros memset left — "no wait at all", which is a lie, not a measurement.
#define TCP_INFO_NEEDED (offsetof(struct tcp_info, tcpi_rtt) + sizeof(((struct tcp_info*)0)->tcpi_rtt))

static napi_value TcpInfo(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value result;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL) != napi_ok || argc < 2) goto fail;
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) goto fail;
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok) goto fail;
  if (type != napi_float64_array || length < 7) goto fail;

  struct tcp_info info;
  socklen_t size = sizeof(info);
  memset(&info, 0, sizeof(info));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) != 0 || size < TCP_INFO_NEEDED) goto fail;
  double* out = (double*)data;
  out[0] = info.tcpi_last_data_recv;
  out[1] = info.tcpi_last_ack_recv;
  out[2] = info.tcpi_rtt;
  // tcpi_bytes_received arrived in Linux 4.1; an older kernel returns a shorter struct.
  out[3] = size >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received) ? (double)info.tcpi_bytes_received : -1;
  out[4] = info.tcpi_unacked;
  out[5] = info.tcpi_sacked;
  out[6] = info.tcpi_state;
  napi_get_boolean(env, 1, &result);
  return result;
fail:
  napi_get_boolean(env, 0, &result);
  return result;
}

// Asked once at load, on a fresh unconnected socket (Linux answers for any TCP socket, state CLOSE), so a
// kernel that fills a short struct is known before the first connection rather than per connection.
static napi_value TcpInfoProbe(napi_env env, napi_callback_info cbinfo) {
  (void)cbinfo;
  napi_value result;
  int filled;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    filled = -errno;
  } else {
    struct tcp_info info;
    socklen_t size = sizeof(info);
    filled = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &size) == 0 ? (int)size : -errno;
    close(fd);
  }
  napi_create_int32(env, filled, &result);
  return result;
}

// SIOCOUTQ on a TCP socket is write_seq - snd_una: every byte the application handed over that the peer has
// not acknowledged, whether sent and in flight or still queued behind the peer's window. Not in struct
// tcp_info (its tcpi_notsent_bytes is only the queued part), and one ioctl where that would take several
// fields and kernel versions. Read when a kept request's write ends: what the kernel still held of it.
static napi_value SendQueue(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  int32_t fd;
  int queued = -1;
  if (napi_get_cb_info(env, cbinfo, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 &&
      napi_get_value_int32(env, argv[0], &fd) == napi_ok) {
    int n;
    if (ioctl(fd, SIOCOUTQ, &n) == 0) queued = n;
  }
  napi_create_int32(env, queued, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "tcpInfo", NAPI_AUTO_LENGTH, TcpInfo, NULL, &fn);
  napi_set_named_property(env, exports, "tcpInfo", fn);
  napi_create_function(env, "tcpInfoProbe", NAPI_AUTO_LENGTH, TcpInfoProbe, NULL, &fn);
  napi_set_named_property(env, exports, "tcpInfoProbe", fn);
  napi_create_function(env, "sendQueue", NAPI_AUTO_LENGTH, SendQueue, NULL, &fn);
  napi_set_named_property(env, exports, "sendQueue", fn);
  napi_value needed;
  napi_create_uint32(env, (uint32_t)TCP_INFO_NEEDED, &needed);
  napi_set_named_property(env, exports, "TCP_INFO_NEEDED", needed);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

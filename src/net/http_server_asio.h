// For handlers that answer with Asio coroutines (the router's proxy): the executor of an
// exchange's connection, a strand. Code spawned on it runs serialised with the connection's
// own I/O and with the Responder's callbacks (on_close, on_drained), so it may share plain
// state with them without locks.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include "boost/asio/any_io_executor.hpp"
#include "net/http_server.h"

namespace moeserve::net {

// `responder` must be one that HttpServer handed to its handler.
boost::asio::any_io_executor exchange_executor(const Responder& responder);

}  // namespace moeserve::net

// mochi-broker: the mochi-mqtt broker (github.com/mochi-mqtt/server/v2) as the project's second
// MQTT broker for tests (scripts/broker2). TCP on 127.0.0.1 only, every client allowed, sessions,
// subscriptions, retained and queued (in-flight) messages kept in a pebble store in a data
// folder, so persistent sessions survive a broker restart.
//
// Every flag has an environment variable of the same meaning (flag wins):
//
//	-port            MOCHI_PORT             TCP port on 127.0.0.1 (default 18840)
//	-data            MOCHI_DATA             pebble store folder (default ./mochi-data)
//	-pid             MOCHI_PID              write this process's PID there (default: none)
//	-sync            MOCHI_SYNC             fsync every store write (default false: the WAL is
//	                                        written, the OS flushes it; a broker crash loses
//	                                        nothing, a machine crash may lose the last writes)
//	-max-inflight    MOCHI_MAX_INFLIGHT     QoS 1/2 messages stored per client, sent or queued
//	                                        (mochi's maximum_inflight; 1..65535, default 65535;
//	                                        mochi itself defaults to 8192 and drops beyond it)
//	-writes-pending  MOCHI_WRITES_PENDING   messages waiting for the socket per client (mochi's
//	                                        maximum_client_writes_pending, default 65536; mochi
//	                                        itself defaults to 8192 and drops beyond it)
//	-receive-maximum MOCHI_RECEIVE_MAXIMUM  QoS 1/2 PUBLISHes a client may have unacknowledged
//	                                        towards the broker (default 1024, mochi's own)
//	-session-expiry  MOCHI_SESSION_EXPIRY   longest session expiry in seconds (default 0 =
//	                                        mochi's maximum, about 136 years)
//
// Logs (JSON, slog) go to stdout. SIGTERM/SIGINT close the listeners and the store cleanly.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func envInt(name string, fallback int) int {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mochi-broker: %s=%q is not a number\n", name, v)
			os.Exit(2)
		}
		return n
	}
	return fallback
}

func envString(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}

func main() {
	port := flag.Int("port", envInt("MOCHI_PORT", 18840), "TCP port on 127.0.0.1")
	data := flag.String("data", envString("MOCHI_DATA", "mochi-data"), "pebble store folder")
	pidFile := flag.String("pid", envString("MOCHI_PID", ""), "PID file")
	syncWrites := flag.Bool("sync", envString("MOCHI_SYNC", "false") == "true", "fsync every store write")
	maxInflight := flag.Int("max-inflight", envInt("MOCHI_MAX_INFLIGHT", 65535), "QoS 1/2 messages stored per client")
	writesPending := flag.Int("writes-pending", envInt("MOCHI_WRITES_PENDING", 65536), "messages waiting for the socket per client")
	receiveMaximum := flag.Int("receive-maximum", envInt("MOCHI_RECEIVE_MAXIMUM", 1024), "server receive maximum per client")
	sessionExpiry := flag.Int("session-expiry", envInt("MOCHI_SESSION_EXPIRY", 0), "longest session expiry (s), 0 = mochi's maximum")
	flag.Parse()

	if *maxInflight < 1 || *maxInflight > 65535 || *receiveMaximum < 1 || *receiveMaximum > 65535 ||
		*writesPending < 1 || *port < 1 || *port > 65535 || *sessionExpiry < 0 {
		fmt.Fprintln(os.Stderr, "mochi-broker: -port, -max-inflight and -receive-maximum take 1..65535, -writes-pending >= 1, -session-expiry >= 0")
		os.Exit(2)
	}

	logger := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = uint16(*maxInflight)
	caps.MaximumClientWritesPending = int32(*writesPending)
	caps.ReceiveMaximum = uint16(*receiveMaximum)
	if *sessionExpiry > 0 {
		caps.MaximumSessionExpiryInterval = uint32(*sessionExpiry)
	}
	server := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: logger, InlineClient: false})

	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		logger.Error("auth hook", "error", err)
		os.Exit(1)
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		logger.Error("data folder", "error", err)
		os.Exit(1)
	}
	mode := pebble.NoSync
	if *syncWrites {
		mode = pebble.Sync
	}
	if err := server.AddHook(new(pebble.Hook), &pebble.Options{Path: dir, Mode: mode}); err != nil {
		logger.Error("pebble hook", "error", err, "path", dir)
		os.Exit(1)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		logger.Error("listener", "error", err, "address", addr)
		os.Exit(1)
	}

	if *pidFile != "" {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			logger.Error("pid file", "error", err, "path", *pidFile)
			os.Exit(1)
		}
	}

	if err := server.Serve(); err != nil {
		logger.Error("serve", "error", err)
		os.Exit(1)
	}
	logger.Info("mochi-broker started", "version", mqtt.Version, "address", addr, "data", dir,
		"max_inflight", *maxInflight, "writes_pending", *writesPending,
		"receive_maximum", *receiveMaximum, "sync", *syncWrites)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	s := <-sigs
	logger.Info("mochi-broker stopping", "signal", s.String())
	if err := server.Close(); err != nil {
		logger.Error("close", "error", err)
		os.Exit(1)
	}
	logger.Info("mochi-broker stopped")
}

package promhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ListenAddr resolves a --metrics-addr value. A bare port ("9400") or an
// address without a host (":9400") binds the loopback interface only:
// training metrics reveal the config and the machine, so exposing them is
// an explicit choice ("0.0.0.0:9400", or a reverse proxy). Port 0 picks a
// free port.
func ListenAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty metrics address")
	}
	if _, err := strconv.Atoi(s); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("metrics address %q: want [HOST]:PORT, e.g. :9400 (loopback) or 0.0.0.0:9400 (every interface)", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("metrics address %q: bad port %q", s, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Handler serves the registry in the Prometheus text or OpenMetrics
// format. A collector that fails is reported in the scrape and does not
// hide the others.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{Registry: e.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan error
}

// Serve listens on addr (resolved by ListenAddr) and serves /metrics, and
// /healthz (200 "ok" while the process runs: the container health check),
// in the background until Shutdown. It returns once the socket is bound, so
// Addr is valid and a port already in use is an error here rather than a
// silent failure later.
func (e *Exporter) Serve(addr string) (*Server, error) {
	a, err := ListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	h := e.Handler()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		t := time.Now()
		h.ServeHTTP(w, r)
		e.scraped(t)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "trm-train metrics: /metrics, liveness: /healthz")
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, addr: ln.Addr(), done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (the chosen port when 0 was
// asked for).
func (s *Server) Addr() net.Addr { return s.addr }

// URL is the scrape URL.
func (s *Server) URL() string { return "http://" + s.addr.String() + "/metrics" }

// Shutdown stops accepting scrapes and waits up to the context's deadline
// for the ones in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = serr
	}
	return err
}

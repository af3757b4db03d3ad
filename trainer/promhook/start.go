package promhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// Endpoint is a started exporter: its metrics server, if any, and the
// end-of-run steps (push, linger) of Stop.
type Endpoint struct {
	*Exporter
	srv *Server
}

// Open builds an exporter and serves it on addr (see ListenAddr), printing
// the scrape URL to opt.Log: with port 0 that line is the only way to
// learn the port. An empty addr serves nothing, for a run that only
// pushes its final state (Options.PushURL).
func Open(addr string, opt Options) (*Endpoint, error) {
	e := New(opt)
	p := &Endpoint{Exporter: e}
	if addr == "" {
		return p, nil
	}
	srv, err := e.Serve(addr)
	if err != nil {
		e.Close()
		return nil, err
	}
	p.srv = srv
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "metrics: serving %s (run %q)\n", srv.URL(), e.run)
	}
	return p, nil
}

// Server is the metrics server, nil when Open was given no address.
func (p *Endpoint) Server() *Server { return p.srv }

// Stop ends the endpoint after the run. When the run ended (OnEnd ran),
// it first pushes the final state to Options.PushURL, then keeps serving
// until a scrape begun after the end completes, Options.Linger has passed
// or ctx is done, whichever comes first; then it shuts the server down
// and releases NVML. The push comes first so that cutting the linger
// short loses nothing. It returns the push's error; the server is shut
// down in any case.
func (p *Endpoint) Stop(ctx context.Context) error {
	var err error
	if p.Ended() && p.opt.PushURL != "" {
		if err = p.Push(ctx, p.opt.PushURL, p.opt.PushJob); err != nil {
			err = fmt.Errorf("metrics: pushing the final state to %s: %w", p.opt.PushURL, err)
		} else if p.opt.Log != nil {
			fmt.Fprintf(p.opt.Log, "metrics: pushed the final state to %s (job %q, run %q)\n", p.opt.PushURL, p.opt.PushJob, p.run)
		}
	}
	if p.srv != nil && p.Ended() && p.opt.Linger > 0 {
		if p.opt.Log != nil {
			fmt.Fprintf(p.opt.Log, "metrics: serving the final state at %s until it is scraped (at most %s; interrupt to exit now)\n", p.srv.URL(), p.opt.Linger)
		}
		t := time.NewTimer(p.opt.Linger)
		select {
		case <-p.final:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if p.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := p.srv.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			err = errors.Join(err, fmt.Errorf("metrics: shutting the server down: %w", serr))
		}
	}
	p.Close()
	return err
}

// Start is Open with a stop function for a command line: stop runs Stop
// with a context that SIGINT or SIGTERM cancels (the second signal of a
// run that the first one ended), and prints Stop's error to opt.Log.
// Call stop after the run, once no more hooks fire.
func Start(addr string, opt Options) (e *Exporter, stop func(), err error) {
	p, err := Open(addr, opt)
	if err != nil {
		return nil, nil, err
	}
	stop = func() {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		if err := p.Stop(ctx); err != nil && opt.Log != nil {
			fmt.Fprintln(opt.Log, err)
		}
	}
	return p.Exporter, stop, nil
}

// RunName is the default run label: the checkpoint directory's name,
// which already names the run for the user, or else the start time, so
// two runs on one Prometheus never share a series.
func RunName(checkpointDir string, start time.Time) string {
	if checkpointDir != "" {
		if b := filepath.Base(filepath.Clean(checkpointDir)); b != "." && b != "/" {
			return b
		}
	}
	return "trm-" + start.UTC().Format("20060102-150405")
}

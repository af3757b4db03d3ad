// Package rendezvous starts a multi-process (multi-node) data-parallel job:
// it reads the rank layout the launcher put in the environment, lets rank 0
// hand every other rank the communicator id (NCCL's 128-byte unique id)
// over TCP, and then keeps watching the group, so that a rank that dies
// makes the others stop with an error instead of waiting forever inside a
// collective.
//
// The environment is the one torchrun, SLURM wrappers and Kubernetes
// training operators (PyTorchJob, an Indexed Job with a headless service)
// already set, so the same launch scripts work: RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT.
//
// Only processes that hold the job's secret (TRM_RDZV_SECRET, a random
// string the launcher gives every rank) can join: a job id or a port is
// guessable, and the communicator id is all a stranger needs to take part
// in the collectives. See Exchange for the handshake.
package rendezvous

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Env is this process's place in the job.
type Env struct {
	Rank           int    // global rank, 0..WorldSize-1
	WorldSize      int    // processes in the job
	LocalRank      int    // rank on this node: picks the GPU
	LocalWorldSize int    // processes on this node
	MasterAddr     string // host of rank 0
	MasterPort     int    // TCP port rank 0 listens on
	Source         string // which variables were read: "torchrun" or "slurm"

	// Secret is TRM_RDZV_SECRET: every rank must hold the same value,
	// which the handshake proves without sending it (see Exchange).
	Secret Secret
	// Insecure is TRM_RDZV_INSECURE=1: run without a secret, accepting
	// any process that reaches the port (a trusted, isolated network).
	Insecure bool
	// Bind is TRM_RDZV_BIND: the address rank 0 listens on instead of
	// MASTER_ADDR's, for a MASTER_ADDR that is not an address of rank
	// 0's host (a NAT or port forward); "0.0.0.0" means every interface.
	Bind string
}

// Secret is a rendezvous secret. It prints as "[redacted]" whatever the
// verb, so logging an Env (fmt's %v, %+v, %#v) never leaks it.
type Secret string

// Format prints a placeholder instead of the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	if s == "" {
		io.WriteString(f, "[none]")
		return
	}
	io.WriteString(f, "[redacted]")
}

// MinSecretLen is the shortest TRM_RDZV_SECRET accepted: 16 characters of
// `openssl rand -hex 32` already carry 64 random bits; shorter values are
// most likely a word or a job id.
const MinSecretLen = 16

// CheckAuth reports whether this rank can take part in a rendezvous: it
// needs TRM_RDZV_SECRET (at least MinSecretLen characters) unless
// TRM_RDZV_INSECURE=1 allows a job without one. Exchange calls it; a
// launcher may call it earlier to fail before opening devices.
//
// Every multi-process job needs the secret, single-node ones too: rank 0's
// port, even on the loopback interface, is reachable by every user of the
// host, and the ranks of a job have no other channel to agree on a
// per-job secret.
func (e Env) CheckAuth() error {
	switch {
	case e.Secret != "" && len(e.Secret) < MinSecretLen:
		return fmt.Errorf("rendezvous: TRM_RDZV_SECRET has %d characters, want at least %d random ones (e.g. export TRM_RDZV_SECRET=$(openssl rand -hex 32) once, for every rank)", len(e.Secret), MinSecretLen)
	case e.Secret == "" && !e.Insecure:
		return fmt.Errorf("rendezvous: TRM_RDZV_SECRET is not set: a multi-process job needs a random secret shared by all its ranks, so that no other process can join it (e.g. export TRM_RDZV_SECRET=$(openssl rand -hex 32) once in the launch script, passed to every rank); TRM_RDZV_INSECURE=1 runs without one on a network you trust")
	}
	return nil
}

// Addr is MASTER_ADDR:MASTER_PORT.
func (e Env) Addr() string { return joinHostPort(e.MasterAddr, e.MasterPort) }

func joinHostPort(h string, p int) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]:" + strconv.Itoa(p)
	}
	return h + ":" + strconv.Itoa(p)
}

func (e Env) String() string {
	return fmt.Sprintf("rank %d of %d (local %d of %d), rank 0 at %s (from %s variables)", e.Rank, e.WorldSize, e.LocalRank, e.LocalWorldSize, e.Addr(), e.Source)
}

// FromEnv reads the process environment; see Parse.
func FromEnv() (Env, bool, error) { return Parse(os.LookupEnv) }

// Parse reads the job layout through lookup. It returns ok=false (and no
// error) for a single-process run: WORLD_SIZE unset or 1 and no SLURM job
// of several tasks.
//
// torchrun style (WORLD_SIZE set): RANK, MASTER_ADDR and MASTER_PORT are
// required; LOCAL_RANK and LOCAL_WORLD_SIZE default to 0 and 1, as
// operators that run one process per pod (Kubernetes) do not set them.
// SLURM style (no WORLD_SIZE, SLURM_NTASKS > 1): SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID and SLURM_NTASKS_PER_NODE stand in for them; MASTER_ADDR
// and MASTER_PORT must still be exported by the batch script (SLURM does
// not choose a rendezvous host; see deploy/slurm). TRM_MASTER_PORT, when
// set, replaces MASTER_PORT (needed under torchrun, whose agent holds it).
func Parse(lookup func(string) (string, bool)) (Env, bool, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	var e Env
	intVar := func(name string, dst *int, def int, required bool) error {
		v := get(name)
		if v == "" {
			if required {
				return fmt.Errorf("%s is not set", name)
			}
			*dst = def
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q is not an integer", name, v)
		}
		*dst = n
		return nil
	}
	var errs []string
	add := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	switch {
	case get("WORLD_SIZE") != "":
		e.Source = "torchrun"
		add(intVar("WORLD_SIZE", &e.WorldSize, 1, true))
		if len(errs) == 0 && e.WorldSize == 1 {
			return Env{}, false, nil
		}
		add(intVar("RANK", &e.Rank, 0, true))
		add(intVar("LOCAL_RANK", &e.LocalRank, 0, false))
		add(intVar("LOCAL_WORLD_SIZE", &e.LocalWorldSize, 1, false))
	case get("SLURM_NTASKS") != "" && get("SLURM_NTASKS") != "1":
		e.Source = "slurm"
		add(intVar("SLURM_NTASKS", &e.WorldSize, 1, true))
		add(intVar("SLURM_PROCID", &e.Rank, 0, true))
		add(intVar("SLURM_LOCALID", &e.LocalRank, 0, false))
		// SLURM_NTASKS_PER_NODE may read "4" or "4(x2)": the count
		// before any repetition suffix is this node's.
		per := get("SLURM_NTASKS_PER_NODE")
		if i := strings.IndexAny(per, "(,"); i >= 0 {
			per = per[:i]
		}
		e.LocalWorldSize = 1
		if per != "" {
			n, err := strconv.Atoi(per)
			if err != nil {
				add(fmt.Errorf("SLURM_NTASKS_PER_NODE=%q is not a task count", get("SLURM_NTASKS_PER_NODE")))
			} else {
				e.LocalWorldSize = n
			}
		}
	default:
		return Env{}, false, nil
	}
	e.MasterAddr = get("MASTER_ADDR")
	if e.MasterAddr == "" {
		add(fmt.Errorf("MASTER_ADDR is not set (the host name or address of rank 0)"))
	}
	// TRM_MASTER_PORT wins over MASTER_PORT: under torchrun the agent's
	// own store already listens on MASTER_PORT, so rank 0 needs another.
	if get("TRM_MASTER_PORT") != "" {
		add(intVar("TRM_MASTER_PORT", &e.MasterPort, 0, true))
	} else {
		add(intVar("MASTER_PORT", &e.MasterPort, 0, true))
	}
	e.Secret = Secret(get("TRM_RDZV_SECRET"))
	e.Bind = get("TRM_RDZV_BIND")
	if v := get("TRM_RDZV_INSECURE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			add(fmt.Errorf("TRM_RDZV_INSECURE=%q: want 1 or 0", v))
		}
		e.Insecure = b
	}
	if len(errs) == 0 {
		switch {
		case e.WorldSize < 1:
			add(fmt.Errorf("world size %d: want at least 1", e.WorldSize))
		case e.Rank < 0 || e.Rank >= e.WorldSize:
			add(fmt.Errorf("rank %d is outside 0..%d", e.Rank, e.WorldSize-1))
		}
		if e.LocalWorldSize < 1 || e.LocalRank < 0 || e.LocalRank >= e.LocalWorldSize {
			add(fmt.Errorf("local rank %d is outside 0..%d", e.LocalRank, e.LocalWorldSize-1))
		}
		if e.MasterPort < 1 || e.MasterPort > 65535 {
			add(fmt.Errorf("MASTER_PORT %d is not a TCP port", e.MasterPort))
		}
	}
	if len(errs) > 0 {
		return Env{}, false, fmt.Errorf("multi-process environment (%s style): %s", e.Source, strings.Join(errs, "; "))
	}
	return e, true, nil
}

package trainer

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LockFile is the lock of a run directory (see LockRunDir).
const LockFile = ".lock"

// ErrRunDirLocked is wrapped by LockRunDir's error when another process
// holds the directory.
var ErrRunDirLocked = errors.New("run directory is in use")

// Heartbeat settings of the lock-file fallback: the holder touches the
// file every lockBeat, and a file not touched for lockStaleBeats beats
// belongs to a process that is gone.
var (
	lockBeat       = 10 * time.Second
	lockStaleBeats = 6
)

// lockInfo is the content of the lock file: who holds the directory.
type lockInfo struct {
	PID     int    `json:"pid"`
	Host    string `json:"host"`
	Started string `json:"started"`
	Mode    string `json:"mode"` // "flock" or "heartbeat"
	Token   string `json:"token"`
}

// RunLock is an exclusive hold on a run directory for the life of a run:
// one run writes a directory's checkpoints and log at a time, so two
// launches given the same --out cannot interleave their logs or prune each
// other's checkpoints.
//
// The lock is an flock(2) on <dir>/.lock, released by the kernel when the
// process ends however it ends (kill -9 included), so a crashed run never
// leaves a stale lock behind. Where the filesystem refuses flock (ENOLCK,
// EOPNOTSUPP or ENOSYS: some NFS mounts), the lock is the file itself: it
// holds the holder's PID, host and a random token, and the holder touches
// its modification time every 10 s (a heartbeat); a lock file not touched
// for 6 beats (a minute), or naming a PID of this host that no longer
// exists, is stale and taken over. Either way the file
// names the holder, so a refused run reports the PID and host that hold
// the directory. docs/run-directory.md describes the directory.
type RunLock struct {
	path string
	f    *os.File
	info lockInfo
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// errFlockUnsupported marks a filesystem that refuses flock.
var errFlockUnsupported = errors.New("flock unsupported")

// tryFlock takes an exclusive, non-blocking flock of f: nil, errHeld when
// another process holds it, errFlockUnsupported when the filesystem
// refuses locks. A variable so tests can simulate such a filesystem.
var tryFlock = flockExclusive

var errHeld = errors.New("held")

// LockRunDir takes the run directory dir (created if needed) for this
// process, or fails at once, wrapping ErrRunDirLocked and naming the
// holder's PID and host.
func LockRunDir(dir string) (*RunLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tok := make([]byte, 8)
	rand.Read(tok)
	l := &RunLock{path: filepath.Join(dir, LockFile),
		info: lockInfo{PID: os.Getpid(), Host: host, Started: time.Now().UTC().Format(time.RFC3339), Token: hex.EncodeToString(tok)}}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
	}
	switch err := tryFlock(f); {
	case err == nil:
		l.f, l.info.Mode = f, "flock"
		if err := l.writeInfo(); err != nil {
			f.Close()
			return nil, err
		}
		return l, nil
	case errors.Is(err, errHeld):
		holder := readLockInfo(l.path)
		f.Close()
		return nil, fmt.Errorf("%w: %s is locked by %s; wait for that run to end or give another directory", ErrRunDirLocked, dir, holder.describe())
	case errors.Is(err, errFlockUnsupported):
		f.Close()
		return l.heartbeatLock(dir)
	default:
		f.Close()
		return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
	}
}

func (h lockInfo) describe() string {
	if h.PID == 0 {
		return "another process (its lock file names no holder yet)"
	}
	s := fmt.Sprintf("PID %d on host %s", h.PID, h.Host)
	if h.Started != "" {
		s += " (since " + h.Started + ")"
	}
	return s
}

func readLockInfo(path string) lockInfo {
	var h lockInfo
	b, err := os.ReadFile(path)
	if err == nil {
		json.Unmarshal(b, &h)
	}
	return h
}

// writeInfo replaces the lock file's content with this holder's.
func (l *RunLock) writeInfo() error {
	b, _ := json.Marshal(l.info)
	b = append(b, '\n')
	if l.f != nil {
		if err := l.f.Truncate(0); err != nil {
			return err
		}
		if _, err := l.f.WriteAt(b, 0); err != nil {
			return err
		}
		return l.f.Sync()
	}
	return writeSynced(l.path, b)
}

// heartbeatLock is the fallback where flock is refused.
func (l *RunLock) heartbeatLock(dir string) (*RunLock, error) {
	l.info.Mode = "heartbeat"
	stale := time.Duration(lockStaleBeats) * lockBeat
	if st, err := os.Stat(l.path); err == nil {
		h := readLockInfo(l.path)
		sameHostGone := h.Host == l.info.Host && h.PID > 0 && processGone(h.PID)
		if h.PID != 0 && time.Since(st.ModTime()) < stale && !sameHostGone {
			return nil, fmt.Errorf("%w: %s is locked by %s (heartbeat %s ago; a lock not refreshed for %s is stale)", ErrRunDirLocked, dir, h.describe(),
				time.Since(st.ModTime()).Round(time.Second), stale)
		}
	}
	if err := l.writeInfo(); err != nil {
		return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
	}
	// Two processes that both found the lock free: the later write wins,
	// and the earlier one sees a token that is not its own.
	time.Sleep(min(lockBeat/10, 200*time.Millisecond))
	if h := readLockInfo(l.path); h.Token != l.info.Token {
		return nil, fmt.Errorf("%w: %s was taken by %s at the same moment", ErrRunDirLocked, dir, h.describe())
	}
	l.stop = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tk := time.NewTicker(lockBeat)
		defer tk.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tk.C:
				now := time.Now()
				os.Chtimes(l.path, now, now)
			}
		}
	}()
	return l, nil
}

// Close releases the directory. The flock's file stays (removing it would
// let a process that opened it just before take a lock on a file no
// longer in the directory); it is emptied so no holder is named.
func (l *RunLock) Close() error {
	var err error
	l.once.Do(func() {
		if l.stop != nil {
			close(l.stop)
			l.wg.Wait()
			if h := readLockInfo(l.path); h.Token == l.info.Token {
				err = os.Remove(l.path)
			}
			return
		}
		if terr := l.f.Truncate(0); terr != nil && !strings.Contains(terr.Error(), "closed") {
			err = terr
		}
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

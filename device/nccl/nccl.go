//go:build cgo

package nccl

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

// Own prototypes (nccl.h): results and enums are plain ints, the
// communicator and the stream opaque pointers. ncclUniqueId is a struct of
// 128 bytes passed by value to ncclCommInitRank.
typedef struct { char internal[128]; } trm_nccl_id;
typedef int (*trm_ncclGetVersion_t)(int *);
typedef int (*trm_ncclGetUniqueId_t)(trm_nccl_id *);
typedef int (*trm_ncclCommInitRank_t)(void **, int, trm_nccl_id, int);
typedef int (*trm_ncclAllReduce_t)(const void *, void *, size_t, int, int, void *, void *);
typedef int (*trm_ncclAllGather_t)(const void *, void *, size_t, int, void *, void *);
typedef int (*trm_ncclBroadcast_t)(const void *, void *, size_t, int, int, void *, void *);
typedef int (*trm_ncclComm_t)(void *);
typedef int (*trm_ncclCommGetAsyncError_t)(void *, int *);
typedef const char *(*trm_ncclGetErrorString_t)(int);
typedef const char *(*trm_ncclGetLastError_t)(void *);
typedef int (*trm_ncclGroup_t)(void);

typedef struct {
	void *lib;
	trm_ncclGetVersion_t getVersion;
	trm_ncclGetUniqueId_t getUniqueId;
	trm_ncclCommInitRank_t initRank;
	trm_ncclAllReduce_t allReduce;
	trm_ncclAllGather_t allGather;
	trm_ncclBroadcast_t broadcast;
	trm_ncclComm_t abort_;
	trm_ncclComm_t destroy;
	trm_ncclCommGetAsyncError_t asyncError;
	trm_ncclGetErrorString_t errorString;
	trm_ncclGetLastError_t lastError; // NULL before NCCL 2.13
	trm_ncclGroup_t groupStart;
	trm_ncclGroup_t groupEnd;
} trm_nccl;

// trm_nccl_open loads path and resolves every entry point. Returns 0, or 1
// with *err set to dlerror's message, or 2 with *err naming the missing
// symbol (the library is then closed again).
static int trm_nccl_open(trm_nccl *n, const char *path, const char **err) {
	memset(n, 0, sizeof *n);
	n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!n->lib) { *err = dlerror(); return 1; }
#define TRM_SYM(field, name, type) n->field = (type)dlsym(n->lib, name); if (!n->field) { *err = name; dlclose(n->lib); n->lib = 0; return 2; }
	TRM_SYM(getVersion, "ncclGetVersion", trm_ncclGetVersion_t)
	TRM_SYM(getUniqueId, "ncclGetUniqueId", trm_ncclGetUniqueId_t)
	TRM_SYM(initRank, "ncclCommInitRank", trm_ncclCommInitRank_t)
	TRM_SYM(allReduce, "ncclAllReduce", trm_ncclAllReduce_t)
	TRM_SYM(allGather, "ncclAllGather", trm_ncclAllGather_t)
	TRM_SYM(broadcast, "ncclBroadcast", trm_ncclBroadcast_t)
	TRM_SYM(abort_, "ncclCommAbort", trm_ncclComm_t)
	TRM_SYM(destroy, "ncclCommDestroy", trm_ncclComm_t)
	TRM_SYM(asyncError, "ncclCommGetAsyncError", trm_ncclCommGetAsyncError_t)
	TRM_SYM(errorString, "ncclGetErrorString", trm_ncclGetErrorString_t)
	TRM_SYM(groupStart, "ncclGroupStart", trm_ncclGroup_t)
	TRM_SYM(groupEnd, "ncclGroupEnd", trm_ncclGroup_t)
#undef TRM_SYM
	n->lastError = (trm_ncclGetLastError_t)dlsym(n->lib, "ncclGetLastError");
	return 0;
}

// trm_nccl_standin reports whether the library is the CPU stand-in for
// the NVIDIA libraries (cuda/standin), which exports this marker.
static int trm_nccl_standin(trm_nccl *n) { return dlsym(n->lib, "trm_standin_version") != 0; }
static int trm_nccl_version(trm_nccl *n, int *v) { return n->getVersion(v); }
static int trm_nccl_unique_id(trm_nccl *n, void *out) { return n->getUniqueId((trm_nccl_id *)out); }
static int trm_nccl_init_rank(trm_nccl *n, void **comm, int nranks, const void *id, int rank) {
	trm_nccl_id v;
	memcpy(&v, id, sizeof v);
	return n->initRank(comm, nranks, v, rank);
}
static int trm_nccl_all_reduce(trm_nccl *n, unsigned long long send, unsigned long long recv, size_t count, int dt,
                               int op, void *comm, unsigned long long stream) {
	return n->allReduce((const void *)send, (void *)recv, count, dt, op, comm, (void *)stream);
}
static int trm_nccl_all_gather(trm_nccl *n, unsigned long long send, unsigned long long recv, size_t count, int dt,
                               void *comm, unsigned long long stream) {
	return n->allGather((const void *)send, (void *)recv, count, dt, comm, (void *)stream);
}
static int trm_nccl_broadcast(trm_nccl *n, unsigned long long send, unsigned long long recv, size_t count, int dt,
                              int root, void *comm, unsigned long long stream) {
	return n->broadcast((const void *)send, (void *)recv, count, dt, root, comm, (void *)stream);
}
static int trm_nccl_abort(trm_nccl *n, void *comm) { return n->abort_(comm); }
static int trm_nccl_destroy(trm_nccl *n, void *comm) { return n->destroy(comm); }
static int trm_nccl_async_error(trm_nccl *n, void *comm, int *res) { return n->asyncError(comm, res); }
static const char *trm_nccl_error_string(trm_nccl *n, int rc) { return n->errorString(rc); }
static const char *trm_nccl_last_error(trm_nccl *n, void *comm) { return n->lastError ? n->lastError(comm) : 0; }
static int trm_nccl_group_start(trm_nccl *n) { return n->groupStart(); }
static int trm_nccl_group_end(trm_nccl *n) { return n->groupEnd(); }
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

// Lib is an opened NCCL library. It is safe for concurrent use.
type Lib struct {
	c       C.trm_nccl
	Path    string // the file that loaded
	Version int    // NCCL_VERSION_CODE, e.g. 22105 for 2.21.5
	// Emulated is true for the CPU stand-in (cuda/standin): it only pairs
	// with the stand-in's CUDA driver.
	Emulated bool
}

var (
	openOnce sync.Once
	openLib  *Lib
	openErr  error
)

// Open loads NCCL once per process from the first of Candidates() that
// has every entry point used here.
func Open() (*Lib, error) {
	openOnce.Do(func() { openLib, openErr = openFirst(Candidates()) })
	return openLib, openErr
}

// OpenPath loads NCCL from one file (or a bare soname, resolved by the
// dynamic loader).
func OpenPath(path string) (*Lib, error) { return openFirst([]string{path}) }

func openFirst(paths []string) (*Lib, error) {
	var tried []string
	for _, p := range paths {
		l := &Lib{Path: p}
		cp := C.CString(p)
		var msg *C.char
		rc := C.trm_nccl_open(&l.c, cp, &msg)
		C.free(unsafe.Pointer(cp))
		switch rc {
		case 0:
			var v C.int
			if err := l.check("ncclGetVersion", C.trm_nccl_version(&l.c, &v), nil); err != nil {
				return nil, err
			}
			l.Version = int(v)
			l.Emulated = C.trm_nccl_standin(&l.c) != 0
			return l, nil
		case 2:
			tried = append(tried, fmt.Sprintf("%s: loaded, but has no %s (not NCCL 2?)", p, C.GoString(msg)))
		default:
			tried = append(tried, p+": "+C.GoString(msg))
		}
	}
	return nil, fmt.Errorf("%w (%s; set TRM_NCCL to the file, or LD_LIBRARY_PATH to its folder, or `pip install nvidia-nccl-cu12`); tried:\n  %s",
		ErrNotFound, Soname, strings.Join(tried, "\n  "))
}

// check maps a result code to an *Error naming call (nil on success).
func (l *Lib) check(call string, rc C.int, comm unsafe.Pointer) error {
	if rc == Success {
		return nil
	}
	e := &Error{Call: call, Code: int(rc), Msg: C.GoString(C.trm_nccl_error_string(&l.c, rc))}
	if d := C.trm_nccl_last_error(&l.c, comm); d != nil {
		e.Detail = C.GoString(d)
	}
	return e
}

// UniqueID creates a new communicator id (ncclGetUniqueId). It opens a
// listening socket of NCCL's own bootstrap on this host, so only rank 0
// calls it.
func (l *Lib) UniqueID() (UniqueID, error) {
	var id UniqueID
	err := l.check("ncclGetUniqueId", C.trm_nccl_unique_id(&l.c, unsafe.Pointer(&id[0])), nil)
	return id, err
}

// GroupStart opens a group of calls that NCCL launches together
// (ncclGroupStart): needed when one thread drives several ranks.
func (l *Lib) GroupStart() error { return l.check("ncclGroupStart", C.trm_nccl_group_start(&l.c), nil) }

// GroupEnd closes a group (ncclGroupEnd).
func (l *Lib) GroupEnd() error { return l.check("ncclGroupEnd", C.trm_nccl_group_end(&l.c), nil) }

// Comm is one rank's communicator.
type Comm struct {
	lib        *Lib
	c          unsafe.Pointer // ncclComm_t
	rank, size int
	mu         sync.Mutex
	gone       bool // aborted or destroyed
}

// InitRank joins the communicator id as rank of nranks
// (ncclCommInitRank). It blocks until every rank has joined, and uses the
// CUDA device current on the calling OS thread, so call it on the thread
// that owns the device (see cuda.Backend.OnStream).
func (l *Lib) InitRank(id UniqueID, nranks, rank int) (*Comm, error) {
	if nranks < 1 || rank < 0 || rank >= nranks {
		return nil, fmt.Errorf("ncclCommInitRank: rank %d outside 0..%d", rank, nranks-1)
	}
	var c unsafe.Pointer
	rc := C.trm_nccl_init_rank(&l.c, &c, C.int(nranks), unsafe.Pointer(&id[0]), C.int(rank))
	if err := l.check("ncclCommInitRank", rc, nil); err != nil {
		return nil, fmt.Errorf("rank %d of %d: %w", rank, nranks, err)
	}
	return &Comm{lib: l, c: c, rank: rank, size: nranks}, nil
}

// Rank is this communicator's rank.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.size }

// handle returns the live communicator or an error naming call.
func (c *Comm) handle(call string) (unsafe.Pointer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone {
		return nil, fmt.Errorf("%s: the communicator of rank %d was aborted or destroyed", call, c.rank)
	}
	return c.c, nil
}

// AllReduceSum enqueues recv = sum over ranks of send (count elements of
// dt) on stream (a CUstream; 0 is the legacy default stream). In place
// when send == recv.
func (c *Comm) AllReduceSum(send, recv uintptr, count int, dt DataType, stream uintptr) error {
	h, err := c.handle("ncclAllReduce")
	if err != nil {
		return err
	}
	rc := C.trm_nccl_all_reduce(&c.lib.c, C.ulonglong(send), C.ulonglong(recv), C.size_t(count), C.int(dt), redSum, h, C.ulonglong(stream))
	return c.lib.check("ncclAllReduce", rc, h)
}

// AllGather enqueues the concatenation in rank order of every rank's
// sendCount elements into recv (size*sendCount elements).
func (c *Comm) AllGather(send, recv uintptr, sendCount int, dt DataType, stream uintptr) error {
	h, err := c.handle("ncclAllGather")
	if err != nil {
		return err
	}
	rc := C.trm_nccl_all_gather(&c.lib.c, C.ulonglong(send), C.ulonglong(recv), C.size_t(sendCount), C.int(dt), h, C.ulonglong(stream))
	return c.lib.check("ncclAllGather", rc, h)
}

// Broadcast enqueues a copy of root's send into every rank's recv.
func (c *Comm) Broadcast(send, recv uintptr, count int, dt DataType, root int, stream uintptr) error {
	h, err := c.handle("ncclBroadcast")
	if err != nil {
		return err
	}
	rc := C.trm_nccl_broadcast(&c.lib.c, C.ulonglong(send), C.ulonglong(recv), C.size_t(count), C.int(dt), C.int(root), h, C.ulonglong(stream))
	return c.lib.check("ncclBroadcast", rc, h)
}

// AsyncError reports an error NCCL met in the background (a peer gone, a
// network failure) since the last call (ncclCommGetAsyncError); nil while
// healthy or while an operation is still in progress.
func (c *Comm) AsyncError() error {
	h, err := c.handle("ncclCommGetAsyncError")
	if err != nil {
		return err
	}
	var res C.int
	if err := c.lib.check("ncclCommGetAsyncError", C.trm_nccl_async_error(&c.lib.c, h, &res), h); err != nil {
		return err
	}
	if res == Success || res == InProgress {
		return nil
	}
	return c.lib.check("NCCL (asynchronous)", res, h)
}

// Abort frees the communicator, making its pending operations on the
// device return (ncclCommAbort): the way out when a peer died and a
// kernel would otherwise wait forever. It may be called from any
// goroutine, and only the first of Abort and Destroy has an effect.
func (c *Comm) Abort() error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil
	}
	c.gone = true
	h := c.c
	c.mu.Unlock()
	return c.lib.check("ncclCommAbort", C.trm_nccl_abort(&c.lib.c, h), nil)
}

// Destroy frees the communicator after its pending operations complete
// (ncclCommDestroy).
func (c *Comm) Destroy() error {
	c.mu.Lock()
	if c.gone {
		c.mu.Unlock()
		return nil
	}
	c.gone = true
	h := c.c
	c.mu.Unlock()
	return c.lib.check("ncclCommDestroy", C.trm_nccl_destroy(&c.lib.c, h), nil)
}

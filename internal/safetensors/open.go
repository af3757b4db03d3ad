package safetensors

import (
	"context"
	"fmt"
	"io"
	"os"
)

// OpenRegular opens path for reading and checks that it is a regular file,
// returning the file and its size. A FIFO, socket or device given where a
// data or weights file is expected is refused by name: reading a FIFO
// blocks until some other process writes, and a device such as /dev/zero
// never ends. On Unix the file is opened non-blocking, so even the open of
// a FIFO without a writer returns at once; the flag has no effect on the
// reads of a regular file. Every reader of model, checkpoint and dataset
// files in this module opens through it.
func OpenRegular(path string) (*os.File, int64, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: not a regular file (%s); refusing to read it", path, fileKind(st.Mode()))
	}
	return f, st.Size(), nil
}

// ReadRegular reads the whole of the regular file at path, refusing a
// file of more than max bytes before allocating anything. It reads
// exactly the size the file had when opened, so a file growing meanwhile
// cannot make it read more.
func ReadRegular(path string, max int64) ([]byte, error) {
	return ReadRegularContext(context.Background(), path, max)
}

// ChunkBytes is how much the context-aware readers and writers of this
// module move between two checks of their context: a few milliseconds of
// disk or page-cache traffic, so a cancelled transfer of gigabytes stops
// within well under a second while the checks cost nothing measurable.
const ChunkBytes = 8 << 20

// ReadRegularContext is ReadRegular stopping when ctx ends, checked every
// ChunkBytes read; the error then names path and how far the read got,
// and wraps ctx.Err().
func ReadRegularContext(ctx context.Context, path string, max int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading %s interrupted: %w", path, err)
	}
	f, size, err := OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this reader accepts", path, size, max)
	}
	b := make([]byte, size)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reading %s interrupted after %d of %d bytes: %w", path, off, size, err)
		}
		n, err := io.ReadFull(f, b[off:min(off+ChunkBytes, size)])
		if err != nil {
			return nil, fmt.Errorf("%s: %w (file shrank while being read?)", path, err)
		}
		off += int64(n)
	}
	return b, nil
}

// fileKind names a non-regular file type for error messages.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeIrregular != 0:
		return "an irregular file"
	}
	return "mode " + m.String()
}

// Command recvtty is a minimal --console-socket peer for tests (like runc's
// contrib/cmd/recvtty): it accepts one connection on a unix socket, receives
// the container's pty master over SCM_RIGHTS and copies its output to stdout
// until the pty closes.
package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: recvtty SOCKET")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "recvtty:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := ln.AcceptUnix()
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("no control message: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("no fd received: %v", err)
	}
	pty := os.NewFile(uintptr(fds[0]), "pty")
	defer pty.Close()
	_, err = io.Copy(os.Stdout, pty)
	if err != nil {
		// EIO is how a pty master reports that the slave side closed.
		if pe, ok := err.(*os.PathError); ok && pe.Err == unix.EIO {
			return nil
		}
	}
	return err
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// errNoPassword: an encrypted key, no $COSIGN_PASSWORD and no terminal to
// ask on.
var errNoPassword = errors.New("the key is encrypted: set COSIGN_PASSWORD (stdin is not a terminal to ask for the password on)")

// passwordTTY is where a password is asked for (a test hook).
var passwordTTY = func() *os.File { return os.Stdin }

// keyPassword gets the password of an encrypted signing key as cosign
// does: $COSIGN_PASSWORD when set (an empty value is a valid password),
// else typed on the terminal of stdin after a prompt on stderr, without
// echo. source says where it came from, for a wrong-password message.
type keyPassword struct {
	tty    *os.File
	prompt io.Writer
	source string
}

func (k *keyPassword) get() ([]byte, error) {
	if pw, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
		k.source = "from $COSIGN_PASSWORD"
		return []byte(pw), nil
	}
	pw, err := readPassword(k.tty, k.prompt, "Enter password for private key: ")
	if err != nil {
		return nil, err
	}
	k.source = "as typed"
	return pw, nil
}

// readPassword prompts on w and reads one line from the terminal tty with
// echo off, restoring the terminal after.
func readPassword(tty *os.File, w io.Writer, prompt string) ([]byte, error) {
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, errNoPassword
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	noEcho.Lflag |= unix.ICANON | unix.ISIG
	noEcho.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return nil, fmt.Errorf("password prompt: %w", err)
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(w) // the newline the user typed was not echoed
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return nil, fmt.Errorf("password prompt: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

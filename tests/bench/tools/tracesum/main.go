// Command tracesum tells where the time of a traced create + delete cycle
// went, from a one-CPU ftrace text trace (/sys/kernel/tracing/trace with
// options/record-tgid) of the events sched_switch, sched_process_fork,
// sched_process_exec, sched_process_exit, raw_syscalls sys_enter and
// sys_exit, and optionally the kprobe pair "pfin" / "pfout" on
// handle_mm_fault's entry and return (page faults).
//
//	tracesum [-root COMM] [-top N] [-marks] < trace
//
// On one CPU every moment belongs to exactly one task, so the time between
// two events is charged to the task running then, to what it was doing:
// inside a system call (by name), inside a page fault, or else in user
// space (including interrupts, exec's loading of the image and the kernel
// between events). Time is summed per process image: a process from its
// fork to its exec is one image (named after its parent's program with
// "(fork)"), from exec to the next exec or its exit another. Only the
// processes that descend from the first process named COMM (default
// cyclecost) count; the rest of the time is "other" or "idle".
//
// The output is one line per image, in the order they started:
//
//	ROLE PROGRAM pid=N start=MS end=MS cpu=MS user=MS faults=MS/N sys=MS [SYSCALL=MS/N ...]
//
// (times in ms from the first traced event; the -top (5) system calls
// that took longest), then "total", "idle" and "other" lines. ROLE is guessed
// from the cycle's shape: the first cfs-runtime that execs the runtime is
// "create", the second "delete", a cfs-runtime started by a cfs-runtime is
// the "watcher", one started by the runtime a "hook".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var sysNames = map[int]string{
	unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_OPENAT: "openat", unix.SYS_CLOSE: "close",
	unix.SYS_MMAP: "mmap", unix.SYS_MUNMAP: "munmap", unix.SYS_MPROTECT: "mprotect", unix.SYS_MADVISE: "madvise",
	unix.SYS_RT_SIGACTION: "rt_sigaction", unix.SYS_RT_SIGPROCMASK: "rt_sigprocmask", unix.SYS_SIGALTSTACK: "sigaltstack",
	unix.SYS_CLONE: "clone", unix.SYS_CLONE3: "clone3", unix.SYS_EXECVE: "execve", unix.SYS_EXIT_GROUP: "exit_group",
	unix.SYS_WAIT4: "wait4", unix.SYS_WAITID: "waitid", unix.SYS_FUTEX: "futex", unix.SYS_NANOSLEEP: "nanosleep",
	unix.SYS_MOUNT: "mount", unix.SYS_UMOUNT2: "umount2", unix.SYS_FSOPEN: "fsopen", unix.SYS_FSCONFIG: "fsconfig",
	unix.SYS_FSMOUNT: "fsmount", unix.SYS_MOVE_MOUNT: "move_mount", unix.SYS_OPEN_TREE: "open_tree",
	unix.SYS_MOUNT_SETATTR: "mount_setattr", unix.SYS_IOCTL: "ioctl", unix.SYS_FLOCK: "flock",
	unix.SYS_MKDIRAT: "mkdirat", unix.SYS_UNLINKAT: "unlinkat", unix.SYS_RENAMEAT: "renameat", unix.SYS_RENAMEAT2: "renameat2",
	unix.SYS_NEWFSTATAT: "newfstatat", unix.SYS_FSTAT: "fstat", unix.SYS_STATX: "statx", unix.SYS_READLINKAT: "readlinkat",
	unix.SYS_GETDENTS64: "getdents64", unix.SYS_FSYNC: "fsync", unix.SYS_FDATASYNC: "fdatasync", unix.SYS_FCHMODAT: "fchmodat",
	unix.SYS_PIDFD_OPEN: "pidfd_open", unix.SYS_POLL: "poll", unix.SYS_PPOLL: "ppoll", unix.SYS_EPOLL_PWAIT: "epoll_pwait",
	unix.SYS_EPOLL_CTL: "epoll_ctl", unix.SYS_EPOLL_CREATE1: "epoll_create1", unix.SYS_PIPE2: "pipe2", unix.SYS_FCNTL: "fcntl",
	unix.SYS_DUP3: "dup3", unix.SYS_PRCTL: "prctl", unix.SYS_SETSID: "setsid", unix.SYS_GETRUSAGE: "getrusage",
	unix.SYS_SCHED_GETAFFINITY: "sched_getaffinity", unix.SYS_PREAD64: "pread64", unix.SYS_LSEEK: "lseek",
	unix.SYS_FCHOWNAT: "fchownat", unix.SYS_UTIMENSAT: "utimensat", unix.SYS_GETRANDOM: "getrandom",
	unix.SYS_SETXATTR: "setxattr", unix.SYS_GETXATTR: "getxattr", unix.SYS_LGETXATTR: "lgetxattr", unix.SYS_LSETXATTR: "lsetxattr",
	unix.SYS_FTRUNCATE: "ftruncate", unix.SYS_KILL: "kill", unix.SYS_TGKILL: "tgkill", unix.SYS_GETTID: "gettid",
	unix.SYS_CLOCK_GETTIME: "clock_gettime", unix.SYS_SCHED_YIELD: "sched_yield", unix.SYS_OPEN: "open",
	unix.SYS_ACCESS: "access", unix.SYS_FACCESSAT2: "faccessat2", unix.SYS_UNAME: "uname", unix.SYS_ARCH_PRCTL: "arch_prctl",
	unix.SYS_SET_TID_ADDRESS: "set_tid_address", unix.SYS_SET_ROBUST_LIST: "set_robust_list", unix.SYS_RSEQ: "rseq",
	unix.SYS_BRK: "brk", unix.SYS_PRLIMIT64: "prlimit64", unix.SYS_GETPID: "getpid", unix.SYS_STATFS: "statfs",
	unix.SYS_FSTATFS: "fstatfs", unix.SYS_SYNCFS: "syncfs", unix.SYS_EXIT: "exit", unix.SYS_GETDENTS: "getdents",
}

func sysName(nr int) string {
	if n, ok := sysNames[nr]; ok {
		return n
	}
	return "sys_" + strconv.Itoa(nr)
}

// image is a process between exec's (or its fork and first exec).
type image struct {
	tgid, parent int
	prog         string
	role         string
	execsRuntime bool // ends in the exec of a program that is not cfs-runtime
	parentProg   string
	start, end   float64
	user, fault  float64
	faults       int
	sys          map[string]float64
	sysN         map[string]int
	cpu          float64 // so far
	marks        []*mark
}

// marked are the system calls in a -marks timeline.
var marked = map[string]bool{
	"flock": true, "mkdirat": true, "ioctl": true, "mount": true, "umount2": true, "fsopen": true,
	"fsmount": true, "move_mount": true, "fsync": true, "renameat": true, "pidfd_open": true,
	"clone": true, "clone3": true, "execve": true, "wait4": true, "waitid": true, "unlinkat": true,
	"exit_group": true, "openat": true, "getdents64": true, "statx": true, "ppoll": true,
}

type mark struct {
	name    string
	n       int
	at, cpu float64
}

type task struct {
	tgid      int
	inSys     string // the system call it is in, "" if none
	faultDeep int
}

var line = regexp.MustCompile(`^\s*(.*)-(\d+)\s+\(\s*([-\d]+)\)\s+\[\d+\]\s+\S+\s+([\d.]+):\s+(\w+):\s*(.*)$`)

func field(s, key string) string {
	i := strings.Index(s, key+"=")
	if i < 0 {
		return ""
	}
	v := s[i+len(key)+1:]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func main() {
	rootComm := flag.String("root", "cyclecost", "the program whose descendants are the cycle")
	marks := flag.Bool("marks", false, "print the timeline of each cfs-runtime image")
	topN := flag.Int("top", 5, "system calls listed per image")
	flag.Parse()
	tasks := map[int]*task{}       // by tid
	cur := map[int]*image{}        // current image by tgid
	parentOf := map[int]int{}      // tgid: parent tgid
	parentProg := map[int]string{} // tgid: the parent's program at the fork
	var images []*image
	inCycle := map[int]bool{} // tgids
	root := -1
	running := 0 // tid on the CPU
	var first, last float64
	var idle, other float64
	taskOf := func(tid, tgid int) *task {
		t := tasks[tid]
		if t == nil {
			t = &task{tgid: tgid}
			tasks[tid] = t
		}
		if tgid > 0 {
			t.tgid = tgid
		}
		return t
	}
	newImage := func(tgid int, prog string, ts float64) *image {
		im := &image{tgid: tgid, parent: parentOf[tgid], parentProg: parentProg[tgid], prog: prog, start: ts, sys: map[string]float64{}, sysN: map[string]int{}}
		cur[tgid] = im
		images = append(images, im)
		return im
	}
	charge := func(ts float64) {
		d := ts - last
		last = ts
		if running == 0 {
			idle += d
			return
		}
		t := tasks[running]
		if t == nil || !inCycle[t.tgid] || cur[t.tgid] == nil {
			other += d
			return
		}
		im := cur[t.tgid]
		im.cpu += d
		switch {
		case t.faultDeep > 0:
			im.fault += d
		case t.inSys != "":
			im.sys[t.inSys] += d
		default:
			im.user += d
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		comm, tid, tgid := m[1], atoi(m[2]), atoi(m[3])
		ts, _ := strconv.ParseFloat(m[4], 64)
		ts *= 1000 // ms
		ev, arg := m[5], m[6]
		if first == 0 {
			first, last = ts, ts
		}
		charge(ts)
		if tid != 0 {
			taskOf(tid, tgid)
			if running != tid && ev != "sched_switch" {
				running = tid // the trace says who runs
			}
		}
		t := tasks[tid]
		switch ev {
		case "sched_switch":
			running = atoi(field(arg, "next_pid"))
		case "sched_process_fork":
			child := atoi(field(arg, "child_pid"))
			if root < 0 && strings.TrimSpace(comm) == *rootComm {
				root = tgid
				inCycle[root] = true
				newImage(root, *rootComm, ts)
			}
			ct := taskOf(child, 0)
			if ct.tgid == 0 {
				// a thread or a process: record-tgid tells on its
				// first event; until then assume a new process
				ct.tgid = child
			}
			if inCycle[tgid] && child != tgid {
				parentOf[child] = tgid
				if p := cur[tgid]; p != nil {
					parentProg[child] = p.prog
				}
			}
		case "sched_process_exec":
			if t == nil || !inCycle[parentOf[t.tgid]] && !inCycle[t.tgid] {
				continue
			}
			inCycle[t.tgid] = true
			if im := cur[t.tgid]; im != nil {
				im.end = ts
				if p := filepath.Base(field(arg, "filename")); p != "cfs-runtime" {
					im.execsRuntime = im.prog == "cfs-runtime"
				}
			}
			newImage(t.tgid, filepath.Base(field(arg, "filename")), ts)
		case "sched_process_exit":
			if t != nil && tid == t.tgid {
				if im := cur[t.tgid]; im != nil && inCycle[t.tgid] {
					im.end = ts
				}
			}
		case "sys_enter":
			if t != nil {
				t.inSys = sysName(atoi(strings.Fields(arg)[1]))
				if im := cur[t.tgid]; im != nil && inCycle[t.tgid] {
					im.sysN[t.inSys]++
					if marked[t.inSys] {
						if k := len(im.marks); k > 0 && im.marks[k-1].name == t.inSys {
							im.marks[k-1].n++
						} else {
							im.marks = append(im.marks, &mark{t.inSys, 1, ts - im.start, im.cpu})
						}
					}
				}
			}
		case "sys_exit":
			if t != nil {
				t.inSys = ""
			}
		case "pfin":
			if t != nil {
				t.faultDeep++
				if im := cur[t.tgid]; im != nil && inCycle[t.tgid] {
					im.faults++
				}
			}
		case "pfout":
			if t != nil && t.faultDeep > 0 {
				t.faultDeep--
			}
		}
		// a forked process's first event: its image starts, in its
		// parent's program
		if t != nil && cur[t.tgid] == nil && inCycle[parentOf[t.tgid]] {
			inCycle[t.tgid] = true
			im := newImage(t.tgid, "", ts)
			im.prog = im.parentProg + "(fork)"
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "tracesum:", err)
		os.Exit(1)
	}
	// roles
	n := 0
	for _, im := range images {
		switch {
		case im.prog != "cfs-runtime":
		case im.execsRuntime && n == 0:
			im.role, n = "create", 1
		case im.execsRuntime:
			im.role = "delete"
		case strings.HasPrefix(im.parentProg, "cfs-runtime"):
			im.role = "watcher"
		case im.parentProg == "runc":
			im.role = "hook"
		}
	}
	var total float64
	for _, im := range images {
		if im.end == 0 {
			im.end = last
		}
		var sys float64
		type kv struct {
			k string
			v float64
		}
		var top []kv
		for k, v := range im.sys {
			sys += v
			top = append(top, kv{k, v})
		}
		slices.SortFunc(top, func(a, b kv) int {
			if a.v > b.v {
				return -1
			}
			if a.v < b.v {
				return 1
			}
			return strings.Compare(a.k, b.k)
		})
		cpu := im.user + im.fault + sys
		total += cpu
		role := im.role
		if role == "" {
			role = "-"
		}
		fmt.Printf("%s %s pid=%d start=%.3f end=%.3f cpu=%.3f user=%.3f faults=%.3f/%d sys=%.3f", role, im.prog, im.tgid,
			im.start-first, im.end-first, cpu, im.user, im.fault, im.faults, sys)
		for i, e := range top {
			if i == *topN {
				break
			}
			fmt.Printf(" %s=%.3f/%d", e.k, e.v, im.sysN[e.k])
		}
		fmt.Println()
		if *marks && im.role != "" {
			for _, m := range im.marks {
				fmt.Printf("  %s x%d at=%.3f cpu=%.3f\n", m.name, m.n, m.at, m.cpu)
			}
			fmt.Printf("  end at=%.3f cpu=%.3f\n", im.end-im.start, cpu)
		}
	}
	fmt.Printf("total window=%.3f cycle=%.3f\nidle %.3f\nother %.3f\n", last-first, total, idle, other)
}

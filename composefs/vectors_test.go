package composefs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/testutil"
)

// The golden vectors were made with mkcomposefs 1.0.8; see
// testdata/vectors/README.md.
const vectorsDir = "../testdata/vectors"

type vector struct {
	name string // e.g. "03-small-files"
	out  string // its out/ directory
}

func vectors(t *testing.T) []vector {
	t.Helper()
	var vs []vector
	for _, name := range testutil.Vectors(t, readerVectorDir) {
		vs = append(vs, vector{name, filepath.Join(readerVectorDir, name)})
	}
	return vs
}

func readTrimmed(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// makeTree runs the vector's recipe into a fresh directory, as the README
// says: T=$(mktemp -d); chmod 0755 $T; ( set -e; umask 022; . ./lib.sh; . recipes/NN.sh )
func makeTree(t *testing.T, v vector) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `( set -e; umask 022; . ./lib.sh; . "recipes/$1.sh" )`, "bash", v.name)
	cmd.Dir = vectorsDir
	cmd.Env = append(os.Environ(), "T="+tree)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("recipe %s: %v\n%s", v.name, err, out)
	}
	return tree
}

// variantOptions maps a variants.txt flag set to options.
func variantOptions(t *testing.T, flags string) []Option {
	t.Helper()
	var opts []Option
	for _, f := range strings.Fields(flags) {
		switch {
		case f == "default":
		case f == "--use-epoch":
			opts = append(opts, WithUseEpoch())
		case f == "--skip-xattrs":
			opts = append(opts, WithSkipXattrs())
		case f == "--user-xattrs":
			opts = append(opts, WithUserXattrs())
		case f == "--skip-devices":
			opts = append(opts, WithSkipDevices())
		case f == "--threads=1":
			opts = append(opts, WithThreads(1))
		case f == "--min-version=0":
			opts = append(opts, WithMinVersion(0))
		case f == "--min-version=1":
			opts = append(opts, WithMinVersion(1))
		case f == "--max-version=0":
			opts = append(opts, WithMaxVersion(0))
		case f == "--max-version=1":
			opts = append(opts, WithMaxVersion(1))
		default:
			t.Fatalf("unknown variant flag %q", f)
		}
	}
	return opts
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestVectors(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, v := range vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			tree := makeTree(t, v)
			tr, err := BuildTree(tree)
			if err != nil {
				t.Fatal(err)
			}
			var img bytes.Buffer
			if err := tr.WriteImage(&img); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(v.out, "image.cfs"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(img.Bytes())
			wantSum := strings.Fields(readTrimmed(t, filepath.Join(v.out, "image.sha256")))[0]
			if hex.EncodeToString(sum[:]) != wantSum {
				t.Errorf("image sha256 %x, want %s (size %d, want %d; first difference at byte %d; see raw-layout.txt)",
					sum, wantSum, img.Len(), len(want), firstDiff(img.Bytes(), want))
			}
			d, err := tr.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(d), readTrimmed(t, filepath.Join(v.out, "digest.txt")); got != want {
				t.Errorf("digest %s, want %s", got, want)
			}

			// mkcomposefs --digest-store: the same objects, each once.
			store := filepath.Join(t.TempDir(), "objects")
			if err := tr.CopyObjects(store); err != nil {
				t.Fatal(err)
			}
			if got, want := storeList(t, store), readTrimmed(t, filepath.Join(v.out, "store-list.txt")); got != want {
				t.Errorf("store listing:\n%s\nwant:\n%s", got, want)
			}

			f, err := os.Open(filepath.Join(v.out, "variants.txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			n := 0
			for sc.Scan() {
				line := sc.Text()
				end := strings.Index(line, "]")
				if !strings.HasPrefix(line, "[") || end < 0 {
					t.Fatalf("bad variants line %q", line)
				}
				flags, want := line[1:end], strings.TrimSpace(line[end+1:])
				got, err := Digest(tree, variantOptions(t, flags)...)
				if err != nil {
					t.Errorf("[%s]: %v", flags, err)
					continue
				}
				if hex.EncodeToString(got) != want {
					t.Errorf("[%s]: digest %x, want %s", flags, got, want)
				}
				n++
			}
			if n != 13 {
				t.Errorf("checked %d variants, want 13", n)
			}
		})
	}
}

// TestVectorDumpRoundTrip parses each vector's dump.txt (composefs-info
// dump of the golden image) and checks that the image built from it has
// the digest of `mkcomposefs --from-file dump.txt`. It needs no root.
func TestVectorDumpRoundTrip(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(v.out, "dump.txt"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr, err := ParseDump(f)
			if err != nil {
				t.Fatal(err)
			}
			d, err := tr.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := hex.EncodeToString(d), readTrimmed(t, filepath.Join(v.out, "fromdump-digest.txt")); got != want {
				t.Errorf("digest %s, want %s", got, want)
			}
		})
	}
}

// storeList lists a digest store like the vectors' store-list.txt:
// "XX/YYYY... SIZE" lines in name order, without temporary files.
func storeList(t *testing.T, store string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(store, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			rel, _ := filepath.Rel(store, p)
			lines = append(lines, fmt.Sprintf("%s %d", rel, fi.Size()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

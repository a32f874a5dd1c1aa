package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cfs-runtime/cfs-runtime/internal/engineimage"
)

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(s[:])
}

// fakeStorage lays out a containers-storage image store as the library
// (and podman 4.3) writes it: images.json and each image's big data, the
// manifest under "manifest" and "manifest-<digest>" (a base64 file name).
type fakeStorage struct {
	root   string
	images []map[string]any
}

func (s *fakeStorage) add(t *testing.T, id string, names []string, manifests map[string][]byte, top string) {
	t.Helper()
	dir := filepath.Join(s.root, "overlay-images", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for key, data := range manifests {
		digests[key] = sha(data)
		if err := os.WriteFile(filepath.Join(dir, bigDataFile(key)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.images = append(s.images, map[string]any{"id": id, "digest": top, "names": names, "big-data-digests": digests})
	data, _ := json.Marshal(s.images)
	if err := os.WriteFile(filepath.Join(s.root, "overlay-images", "images.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStorageManifest(t *testing.T) {
	s := &fakeStorage{root: t.TempDir()}
	const id = "d4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93"
	const key = "composefs.merged.erofs.v1.fsverity-sha256-12"
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` + id + `"},"annotations":{"` + key + `":"aa"}}`)
	s.add(t, id, []string{"reg/app:1"}, map[string][]byte{"manifest": man, "manifest-" + sha(man): man}, sha(man))

	// An image pulled through an index: "manifest" is the index, the
	// platform's manifest is under manifest-<digest>.
	const id2 = "e4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93"
	man2 := []byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + id2 + `"},"annotations":{"` + key + `":"bb"}}`)
	idx := []byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:0000","platform":{"os":"linux","architecture":"other"}},{"digest":"` + sha(man2) + `","platform":{"os":"linux","architecture":"` + runtime.GOARCH + `"}}]}`)
	s.add(t, id2, []string{"reg/multi:1"}, map[string][]byte{"manifest": idx, "manifest-" + sha(man2): man2}, sha(idx))

	// An image whose manifest file was changed on disk.
	const id3 = "f4328552600a0e6a7904b6f4fd2de88da6184f7ff0bf4f10c4963a0e73389e93"
	man3 := []byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + id3 + `"}}`)
	s.add(t, id3, []string{"reg/bad:1"}, map[string][]byte{"manifest": man3}, sha(man3))
	bad := filepath.Join(s.root, "overlay-images", id3, "manifest")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(man3), "2", "2 ", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		img  engineimage.Image
		want string // annotation value, or the error
	}{
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/app:1", Ref: id}, "aa"},
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/app:1", Ref: "sha256:" + id}, "aa"},
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/app:1"}, "aa"},
		// The id decides, not the name.
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/app:1", Ref: id2}, "bb"},
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/multi:1"}, "bb"},
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/none:1"}, "containers-storage " + s.root + ": no image named reg/none:1"},
		{engineimage.Image{Engine: engineimage.CRIO, Name: "reg/bad:1"}, "containers-storage " + s.root + ": image " + id3 + ": blob " + sha(man3) + ": content hashes to sha256:"},
	} {
		m, err := storageManifest(&engineimage.Request{Image: tc.img, StorageRoot: s.root})
		if err != nil {
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%v: %v, want %s", tc.img, err, tc.want)
			}
			continue
		}
		if got := m.Annotations[key]; got != tc.want {
			t.Errorf("%v: annotation %q, want %q", tc.img, got, tc.want)
		}
	}
}

// The file names containers-storage gives big data (makeBigDataBaseName).
func TestBigDataFile(t *testing.T) {
	for key, want := range map[string]string{
		"manifest": "manifest",
		"manifest-sha256:b1a9277de9c2453b3462603382c5ee4b41dd79f8d26e2ccf655e26f85bcd09dc": "=bWFuaWZlc3Qtc2hhMjU2OmIxYTkyNzdkZTljMjQ1M2IzNDYyNjAzMzgyYzVlZTRiNDFkZDc5ZjhkMjZlMmNjZjY1NWUyNmY4NWJjZDA5ZGM=",
	} {
		if got := bigDataFile(key); got != want {
			t.Errorf("bigDataFile(%q) = %q, want %q", key, got, want)
		}
	}
}

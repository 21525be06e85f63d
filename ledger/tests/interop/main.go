// Interop check: Go's checksum-database code (golang.org/x/mod/sumdb/note and sumdb/tlog)
// verifies a signed checkpoint, tiles and proofs produced by auditlog-ledger.
//
// Usage: go run . <case.json>. Exits non-zero naming the first check that fails.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Root  string   `json:"root"`
	Leaf  string   `json:"leaf"`
	Proof []string `json:"proof"`
}

type consistency struct {
	Old     int64    `json:"old"`
	OldRoot string   `json:"old_root"`
	New     int64    `json:"new"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

type testCase struct {
	VerifierKeys []string      `json:"verifier_keys"`
	SignerKey    string        `json:"signer_key"`
	Note         string        `json:"note"`
	Origin       string        `json:"origin"`
	TileDir      string        `json:"tile_dir"`
	Size         int64         `json:"size"`
	Root         string        `json:"root"`
	Inclusions   []inclusion   `json:"inclusions"`
	Consistency  []consistency `json:"consistency"`
}

// dirTiles reads tiles from files at their C2SP paths (Go's paths carry the height, C2SP's don't).
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		path := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		data, err := os.ReadFile(filepath.Join(d.dir, filepath.FromSlash(path)))
		if err != nil {
			return nil, fmt.Errorf("tile %s: %w", path, err)
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func hash(s string) tlog.Hash {
	h, err := tlog.ParseHash(s)
	if err != nil {
		fail("parse hash %q: %v", s, err)
	}
	return h
}

func hashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		out[i] = hash(s)
	}
	return out
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "interop: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("read case: %v", err)
	}
	var c testCase
	if err := json.Unmarshal(raw, &c); err != nil {
		fail("parse case: %v", err)
	}

	// The checkpoint opens with each listed verifier key (Go's note.Open).
	var verifiers []note.Verifier
	for _, k := range c.VerifierKeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			fail("note.NewVerifier(%q): %v", k, err)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open([]byte(c.Note), note.VerifierList(verifiers...))
	if err != nil {
		fail("note.Open: %v", err)
	}
	if len(n.Sigs) != len(verifiers) {
		fail("note.Open verified %d signatures, want %d", len(n.Sigs), len(verifiers))
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != c.Origin || lines[1] != strconv.FormatInt(c.Size, 10) || lines[2] != c.Root {
		fail("checkpoint text %q does not carry origin %s, size %d, root %s", n.Text, c.Origin, c.Size, c.Root)
	}

	// Go signs the same text with the same key: Ed25519 is deterministic, so the bytes match.
	signer, err := note.NewSigner(c.SignerKey)
	if err != nil {
		fail("note.NewSigner: %v", err)
	}
	goNote, err := note.Sign(&note.Note{Text: n.Text}, signer)
	if err != nil {
		fail("note.Sign: %v", err)
	}
	if !strings.Contains(c.Note, strings.TrimPrefix(string(goNote), n.Text+"\n")) {
		fail("Go's signature line %q is not in the note %q", goNote, c.Note)
	}

	// The tiles authenticate against the root (TileHashReader checks them) and give the root.
	tree := tlog.Tree{N: c.Size, Hash: hash(c.Root)}
	reader := tlog.TileHashReader(tree, dirTiles{c.TileDir})
	th, err := tlog.TreeHash(c.Size, reader)
	if err != nil || th != tree.Hash {
		fail("tlog.TreeHash(%d) from tiles = %v, %v; want %v", c.Size, th, err, tree.Hash)
	}

	for _, inc := range c.Inclusions {
		proof := tlog.RecordProof(hashes(inc.Proof))
		if err := tlog.CheckRecord(proof, inc.Size, hash(inc.Root), inc.Index, hash(inc.Leaf)); err != nil {
			fail("tlog.CheckRecord(index %d, size %d): %v", inc.Index, inc.Size, err)
		}
		goProof, err := tlog.ProveRecord(inc.Size, inc.Index, reader)
		if err != nil {
			fail("tlog.ProveRecord(size %d, index %d): %v", inc.Size, inc.Index, err)
		}
		if fmt.Sprint(goProof) != fmt.Sprint(proof) {
			fail("inclusion proof for %d in %d differs from Go's:\n have %v\n want %v", inc.Index, inc.Size, proof, goProof)
		}
		goRoot, err := tlog.TreeHash(inc.Size, reader)
		if err != nil || goRoot != hash(inc.Root) {
			fail("tlog.TreeHash(%d) = %v, %v; want %s", inc.Size, goRoot, err, inc.Root)
		}
	}
	for _, con := range c.Consistency {
		proof := tlog.TreeProof(hashes(con.Proof))
		if err := tlog.CheckTree(proof, con.New, hash(con.NewRoot), con.Old, hash(con.OldRoot)); err != nil {
			fail("tlog.CheckTree(%d -> %d): %v", con.Old, con.New, err)
		}
		goProof, err := tlog.ProveTree(con.New, con.Old, reader)
		if err != nil {
			fail("tlog.ProveTree(%d, %d): %v", con.New, con.Old, err)
		}
		if fmt.Sprint(goProof) != fmt.Sprint(proof) {
			fail("consistency proof %d -> %d differs from Go's:\n have %v\n want %v", con.Old, con.New, proof, goProof)
		}
	}
	fmt.Printf("interop ok: note, %d tiles-backed root, %d inclusion and %d consistency proofs\n", c.Size, len(c.Inclusions), len(c.Consistency))
}

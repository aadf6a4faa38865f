package allinone

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/rs/zerolog"
)

// embeddedRedis is the all-in-one's store when neither HERMOD_REDIS_URL nor
// a redis-server on PATH is available: a Redis-protocol server in process
// (miniredis) whose data is written to HERMOD_DATA_DIR/redis/snapshot.jsonl
// every second and at shutdown, and read back at start. It is for
// development: at most the last second of writes is lost on a crash, and
// the delivery pipeline's outcomes are in JetStream anyway.
type embeddedRedis struct {
	m    *miniredis.Miniredis
	path string
	log  zerolog.Logger
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex // serialises snapshots
}

// snapshotEntry is one key of the snapshot file.
type snapshotEntry struct {
	Key   string             `json:"k"`
	Type  string             `json:"t"`
	TTLms int64              `json:"ttl,omitempty"`
	Str   string             `json:"s,omitempty"`
	Hash  map[string]string  `json:"h,omitempty"`
	ZSet  map[string]float64 `json:"z,omitempty"`
}

func startEmbeddedRedis(dir string, log zerolog.Logger) (*embeddedRedis, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	e := &embeddedRedis{m: miniredis.NewMiniRedis(), path: filepath.Join(dir, "snapshot.jsonl"), log: log, stop: make(chan struct{})}
	if err := e.load(); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if err := e.m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	e.wg.Add(1)
	go e.loop()
	return e, nil
}

func (e *embeddedRedis) url() string { return "redis://" + e.m.Addr() + "/0" }

// loop advances key expiry with the wall clock and snapshots every second.
func (e *embeddedRedis) loop() {
	defer e.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.m.FastForward(now.Sub(last))
			last = now
			if err := e.snapshot(); err != nil {
				e.log.Warn().Err(err).Msg("embedded store snapshot failed")
			}
		}
	}
}

func (e *embeddedRedis) close() {
	close(e.stop)
	e.wg.Wait()
	if err := e.snapshot(); err != nil {
		e.log.Error().Err(err).Msg("embedded store: final snapshot failed")
	}
	e.m.Close()
}

func (e *embeddedRedis) snapshot() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	tmp := e.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, k := range e.m.Keys() {
		ent := snapshotEntry{Key: k, Type: e.m.Type(k), TTLms: e.m.TTL(k).Milliseconds()}
		switch ent.Type {
		case "string":
			ent.Str, err = e.m.Get(k)
		case "hash":
			var fields []string
			fields, err = e.m.HKeys(k)
			ent.Hash = make(map[string]string, len(fields))
			for _, fl := range fields {
				ent.Hash[fl] = e.m.HGet(k, fl)
			}
		case "zset":
			ent.ZSet, err = e.m.SortedSet(k)
		default:
			continue // Hermod uses no other types
		}
		if err != nil {
			continue // the key changed type or vanished meanwhile
		}
		if err := enc.Encode(&ent); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, e.path)
}

func (e *embeddedRedis) load() error {
	f, err := os.Open(e.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var ent snapshotEntry
		if err := json.Unmarshal(sc.Bytes(), &ent); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		switch ent.Type {
		case "string":
			if err := e.m.Set(ent.Key, ent.Str); err != nil {
				return err
			}
		case "hash":
			fv := make([]string, 0, 2*len(ent.Hash))
			for k, v := range ent.Hash {
				fv = append(fv, k, v)
			}
			e.m.HSet(ent.Key, fv...)
		case "zset":
			for m, s := range ent.ZSet {
				if _, err := e.m.ZAdd(ent.Key, s, m); err != nil {
					return err
				}
			}
		}
		if ent.TTLms > 0 {
			e.m.SetTTL(ent.Key, time.Duration(ent.TTLms)*time.Millisecond)
		}
	}
	return sc.Err()
}

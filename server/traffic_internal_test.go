package server

import "testing"

// TestSizeBucket checks the shift arithmetic against the bucket bounds
// themselves, at and around every bound.
func TestSizeBucket(t *testing.T) {
	want := func(n int) int {
		for i, b := range sizeBounds {
			if float64(n) <= b {
				return i
			}
		}
		return len(sizeBounds)
	}
	ns := []int{0, 1, 2, 15}
	for _, b := range sizeBounds {
		ns = append(ns, int(b)-1, int(b), int(b)+1)
	}
	for _, n := range ns {
		if got := sizeBucket(n); got != want(n) {
			t.Errorf("sizeBucket(%d) = %d, want %d", n, got, want(n))
		}
	}
}

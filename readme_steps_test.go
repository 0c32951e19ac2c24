package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeHeadings returns the text of every heading of README.md.
func readmeHeadings(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(data), -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// TestPointersIntoTheREADMEArrive: a newcomer told to see README, "X" in
// .env or the compose file finds a section named X.
func TestPointersIntoTheREADMEArrive(t *testing.T) {
	headings := readmeHeadings(t)
	pointer := regexp.MustCompile(`README, "([^"]+)"`)
	found := 0
	for _, name := range []string{".env", "docker-compose.yml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range pointer.FindAllStringSubmatch(string(data), -1) {
			found++
			if !slices.Contains(headings, m[1]) {
				t.Errorf("%s points at README, %q: no such section", name, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal(`no README, "..." pointer found: the pattern no longer matches how the files point`)
	}
}

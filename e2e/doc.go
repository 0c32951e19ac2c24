// Package e2e tests ChangeBank from the outside, as its users meet it: the
// browser journeys in headless Chromium, the app against providers of other
// shapes, several instances behind a balancer, the compose file, Dockerfile
// and kickstart on paper, and the documentation (README.md and docs/): its
// links, diagrams, commands and recipes.
// It holds no code of its own: every test runs the app in process through
// app.Run, on free ports, and reads the repository's files from its root.
package e2e

"""Real servers and scripted users for integration tests, benchmarks and the demo.

Plain classes, importable without pytest: `synapse.SynapseServer`, `dovecot.DovecotServer`
and `smtp.SmtpServer` on free loopback ports, and `person.Person`, an end-to-end encrypted
Matrix user. Import the submodules directly; this package stays empty so that unit tests
do not pay for importing matrix-nio.
"""

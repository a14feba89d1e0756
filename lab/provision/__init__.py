"""Everything that runs on the Docker host to build, start and remove a lab."""

"""The docker backend: containers of the node image on a labelled bridge network per run."""

"""An example qlf task package (see qlf's README, "Add your own task")."""

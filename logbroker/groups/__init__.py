"""Consumer groups over the storage layer: committed offsets (``offsets``), membership and
partition assignment (``membership``), and listing, describing, deleting and resetting groups
(``admin``)."""

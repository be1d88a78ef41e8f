"""Reading files into layers: archives, encodings, formats (vector, CSV, OSM), whole territories."""

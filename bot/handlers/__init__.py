"""One package per channel over the shared ``kit``; ``registry`` lists the channels an install can serve."""

"""SCGM (SCGM-G, SCGM-A): the E-step, the super-class queues, and ANCOR which shares them."""

"""One collection cycle, one job per module.

``plan`` which metric runs on which source, for which slots (and which slots are missing);
``read`` the sources side by side; ``table`` the store table prepared and written batch by
batch; ``replay`` the spool both ways (a cycle the store could not take, written first by the
next run); ``write`` the ONE write skeleton through the Layout; ``backfill`` missing slots;
``run`` one cycle end to end (dry run, write, catch-up); ``results`` what each of them did.
"""

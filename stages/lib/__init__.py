"""What the stages are built from: source adapters, filters, task builders, decontamination, training loops,
model loading, JSONL helpers. No module here imports a stage; each stage imports what it needs from here."""

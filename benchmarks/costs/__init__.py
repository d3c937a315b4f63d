"""What recording every answer as a trace, and scoring its fidelity, cost a comparison."""

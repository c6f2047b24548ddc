"""Working with a helpdesk: its references, the ticket sync and delivery into its tickets."""

"""PBX adapters: what a PBX's calls mean to the screening service. Protocol details stay in protocols/."""

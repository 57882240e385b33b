"""L402 and the Payment auth scheme (MPP): macaroons, challenges, the 402 guard, paid content."""

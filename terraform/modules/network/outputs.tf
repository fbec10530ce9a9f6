output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "availability_zones" {
  description = "Names of the availability zones the subnets are in, in subnet order."
  value       = aws_subnet.private[*].availability_zone
}

output "public_subnet_ids" {
  description = "Public subnets (ALB, NAT gateways), one per zone."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (MSK brokers, ECS tasks, interface endpoints), one per zone."
  value       = aws_subnet.private[*].id
}

output "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint, for security group egress rules to S3 (ECR image layers)."
  value       = aws_vpc_endpoint.s3.prefix_list_id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.endpoints.id
}

output "nat_public_ips" {
  description = "Public addresses of the NAT gateways: the source addresses Snowflake and the schema registry see (for their network policies)."
  value       = aws_eip.nat[*].public_ip
}

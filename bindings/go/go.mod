module wsgate

go 1.19
